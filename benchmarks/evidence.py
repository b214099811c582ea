"""P12, the cost of evidence: the key moments, matched words and margin of a clip's answer
(`emoclip.evidence.explain_encoding`, from the cached encoding) over the whole analysis of the
clip (evidence included), best of `repeats` each, alternating; with the work each counted: the
evidence decodes no frame, encodes no crop and no text, and pools one sequence per moment; a
re-score after one edited description embeds that description only and pools nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from emoclip.evidence.explain import explain_encoding

from .timing import log
from .work import WORK, same_work


def bench_p12(predictor, path: Path, repeats: int) -> dict[str, Any]:
    """Evidence seconds / analysis seconds on the clip at `path` (`predictor` keeps no encoded
    video: each ``predict`` is a whole analysis)."""
    classes = predictor.default_classes()
    predictor.predict(path, classes)  # warm: detector, towers, text cache
    encoding = predictor.encode(path)
    scale = predictor.model.logit_scale.detach().float().cpu()

    text = predictor.class_embeddings(classes)
    probs = predictor.score(encoding, classes).probabilities
    texts = predictor.parts.text_cache.embed(classes.texts)

    def evidence():
        encoding.evidence.clear()  # the clip's first explanation: its moments are pooled
        t0 = time.perf_counter()
        out = explain_encoding(
            encoding,
            probs,
            classes,
            text,
            texts,
            scale,
            predictor.parts.pooler.pool,
            predictor.parts.config.num_frames,
        )
        return out, time.perf_counter() - t0

    analysis_t, evidence_t = [], []
    work: dict[str, list[dict[str, int]]] = {"analysis": [], "evidence": [], "edit": []}
    for _ in range(repeats):
        before = WORK.snapshot()
        t0 = time.perf_counter()
        predictor.predict(path, classes)
        analysis_t.append(time.perf_counter() - t0)
        work["analysis"].append(WORK.since(before))
        before = WORK.snapshot()
        ev, seconds = evidence()
        evidence_t.append(seconds)
        work["evidence"].append(WORK.since(before))
    first = classes.classes[0]
    for n in range(repeats):  # an edited description: its text embedded, nothing pooled
        edited = classes.with_class(first.name, f"{first.descriptions[0]} (P12 edit {n})")
        before = WORK.snapshot()
        predictor.score(encoding, edited)
        work["edit"].append(WORK.since(before))
    res: dict[str, Any] = {
        "analysis_s": min(analysis_t),
        "evidence_s": min(evidence_t),
        "analysis_all_s": analysis_t,
        "evidence_all_s": evidence_t,
        "moments": len(ev.moments),
        "key_moments": len(ev.key_moments),
        "work": {k: same_work(v) for k, v in work.items()},
    }
    res["P12"] = res["evidence_s"] / res["analysis_s"]
    log(
        f"  evidence {res['evidence_s'] * 1e3:.1f} ms ({res['moments']} moments re-pooled) vs analysis "
        f"{res['analysis_s']:.2f} s; work: evidence {res['work']['evidence']}, edit {res['work']['edit']}"
    )
    return res
