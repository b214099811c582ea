"""The class-set check: which classes the running model may confuse, which descriptions its text
encoder cuts, and repeated descriptions.

Rule for "too close" (documented in docs/evidence.md): the running model embeds the reference
pairs of `reference_pairs`; the threshold is the midpoint between the paraphrase pairs' median
cosine and the distinct pairs' median cosine; a pair of class embeddings (compounds included)
whose cosine is at least the threshold sits nearer the paraphrases and is flagged. A compound is
not compared with its own parts (it is their mix, so it is always near them). When the model
embeds the paraphrases no closer than the distinct pairs, the check says it cannot calibrate and
flags nothing.

Descriptions are cut at the text encoder's context (``model.context_length``: 77 positions for
CLIP, 32 for the synthetic toy); the warning says how many words are not read in full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emoclip.evidence.reference_pairs import DISTINCT_PAIRS, PARAPHRASE_PAIRS
from emoclip.model.tokenizer import count_tokens

__all__ = ["Calibration", "ClassCheck", "calibrate", "check_classes", "words_dropped"]

Embed = Callable[[Sequence[str]], torch.Tensor]
"""Texts -> (N, D) L2-normalised embeddings (a `TextEmbeddingCache.embed`)."""


@dataclass(frozen=True)
class Calibration:
    """The running model's notion of "alike", from the reference pairs.

    Attributes:
        paraphrase: (P,) cosines of the paraphrase pairs; distinct: (Q,) of the distinct pairs.
        threshold: Midpoint of the two medians; None when the paraphrases are not closer.
    """

    paraphrase: np.ndarray
    distinct: np.ndarray
    threshold: float | None


@dataclass
class ClassCheck:
    """What the check found. `errors` make ``emoclip classes check`` exit non-zero.

    Attributes:
        names: Class then compound names, the rows and columns of `similarity`.
        similarity: (C, C) cosines of the class embeddings.
        threshold: The flagging threshold (None: could not calibrate, or not computed).
        close_pairs: (name, name, cosine) of every flagged pair, closest first.
        truncated: (class, description number, words not read in full) per cut description.
        warnings: Every finding in plain words; errors: what makes the set unusable.
    """

    names: list[str] = field(default_factory=list)
    similarity: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    threshold: float | None = None
    close_pairs: list[tuple[str, str, float]] = field(default_factory=list)
    truncated: list[tuple[str, int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "similarity": np.round(self.similarity.astype(float), 4).tolist(),
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "close_pairs": [[a, b, round(c, 4)] for a, b, c in self.close_pairs],
            "truncated": [list(t) for t in self.truncated],
            "warnings": self.warnings,
            "errors": self.errors,
        }


def calibrate(embed: Embed) -> Calibration:
    """Embed the reference pairs with the running model and place the threshold between them."""
    sims = []
    for pairs in (PARAPHRASE_PAIRS, DISTINCT_PAIRS):
        a = embed([x for x, _ in pairs])
        b = embed([y for _, y in pairs])
        sims.append((F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1))
    para, dist = (s.numpy().astype(np.float64) for s in sims)
    hi, lo = float(np.median(para)), float(np.median(dist))
    return Calibration(para, dist, (hi + lo) / 2 if hi > lo else None)


def words_dropped(text: str, context_length: int) -> int:
    """Words of `text` the text encoder does not read in full at `context_length` positions
    (``<start>`` and ``<end>`` included); 0 when it fits."""
    if count_tokens(text) <= context_length:
        return 0
    words = text.split()
    lo, hi = 0, len(words)  # the longest prefix of whole words that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= context_length:
            lo = mid
        else:
            hi = mid - 1
    return len(words) - lo


def check_classes(
    class_set: Any, embed: Embed, class_embeddings: torch.Tensor, context_length: int
) -> ClassCheck:
    """Check a `ClassSet` against the running model.

    Args:
        class_set: The class set (validated: names unique, descriptions non-empty).
        embed: The model's text embedding (the predictor's text cache: reference texts are
            embedded once per model, a class set's texts only when they changed).
        class_embeddings: (C, D) its class then compound embeddings.
        context_length: The text encoder's positions (``model.context_length``).
    """
    report = ClassCheck(names=list(class_set.names))
    emb = F.normalize(class_embeddings.float(), dim=-1)
    report.similarity = (emb @ emb.t()).numpy()
    cal = calibrate(embed)
    report.threshold = cal.threshold
    report.warnings += _truncation(class_set, context_length, report)
    report.warnings += _repeats(class_set)
    if cal.threshold is None:
        report.warnings.append(
            "this model embeds the reference paraphrases no closer than the distinct reference "
            "pairs, so it cannot say which classes it would confuse"
        )
        return report
    parts = {c.name: set(c.parts) for c in class_set.compounds}
    n = len(report.names)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = report.names[i], report.names[j]
            if b in parts.get(a, ()) or a in parts.get(b, ()):
                continue
            cos = float(report.similarity[i, j])
            if cos >= cal.threshold:
                report.close_pairs.append((a, b, cos))
    report.close_pairs.sort(key=lambda p: -p[2])
    report.warnings += [
        f"the model may confuse '{a}' and '{b}': their descriptions embed {cos:.2f} alike "
        f"(pairs from {cal.threshold:.2f} up sit nearer paraphrases than distinct emotions)"
        for a, b, cos in report.close_pairs
    ]
    return report


def _truncation(class_set: Any, context_length: int, report: ClassCheck) -> list[str]:
    out = []
    for cls in class_set.classes:
        for number, text in enumerate(cls.descriptions, 1):
            dropped = words_dropped(text, context_length)
            if dropped:
                report.truncated.append((cls.name, number, dropped))
                word = "word" if dropped == 1 else "words"
                out.append(
                    f"'{cls.name}' description {number} is cut at the text encoder's "
                    f"{context_length} tokens: its last {dropped} {word} are not read"
                )
    return out


def _repeats(class_set: Any) -> list[str]:
    seen: dict[str, str] = {}
    out = []
    for cls in class_set.classes:
        for number, text in enumerate(cls.descriptions, 1):
            key = " ".join(text.casefold().split())
            where = f"'{cls.name}' description {number}"
            if key in seen:
                out.append(f"{where} repeats {seen[key]}")
            else:
                seen[key] = where
    return out
