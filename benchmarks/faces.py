"""``python -m benchmarks.faces``: precision and recall of a face-detection stack on the face
evaluation set (`emoclip.testing.faces_eval`), per face-size band and per non-face kind, on the
calibration part and the test part.

A detection matches a face when their IoU is at least `MATCH_IOU` (each face matches once, best
score first); a detection matching no face is a false face. Recall is per band of the face's
size; precision per band of the detection's size. False faces on the images of hard non-faces are
counted per kind, as false faces per 20 images (the target is at most 1).

Stacks (``--stack``): ``kept`` (the library's photo search, `emoclip.inference.photo.detect_all`
with the default detector), and the candidates of `benchmarks.faces_candidates`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MATCH_IOU = 0.35  # a detection this close to a face's recorded box found it
BANDS = ("<48", "48-96", ">96")


@dataclass
class Scored:
    """The detections of one evaluation image, without its pixels."""

    name: str
    kind: str
    faces: list[tuple[float, float, float, float]]
    boxes: list[tuple[float, float, float, float, float]]  # x, y, w, h, score
    decoys: list[tuple[float, float, float, float, str]] = field(default_factory=list)
    seconds: float = 0.0


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two ``(x, y, w, h, ...)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return ix * iy / union if union > 0 else 0.0


def run(detect: Callable[[np.ndarray], list[Any]], split: str | None) -> list[Scored]:
    """Detect on every image of `split`; `detect` returns `FaceBox`-like boxes (x, y, w, h, score)."""
    from emoclip.testing.faces_eval import eval_set

    out = []
    for e in eval_set(split):
        t0 = time.perf_counter()
        found = detect(e.image)
        dt = time.perf_counter() - t0
        boxes = [(b.x, b.y, b.w, b.h, b.score) for b in found]
        out.append(Scored(e.name, e.kind, list(e.faces), boxes, list(e.decoys), dt))
    return out


def _match(s: Scored, threshold: float) -> tuple[list[bool], list[bool]]:
    """(found per face, false per kept detection) at `threshold`."""
    dets = sorted((b for b in s.boxes if b[4] >= threshold), key=lambda b: -b[4])
    found = [False] * len(s.faces)
    false = []
    for d in dets:
        best, best_i = MATCH_IOU, -1
        for i, f in enumerate(s.faces):
            v = iou(d, f)
            if not found[i] and v >= best:
                best, best_i = v, i
        if best_i >= 0:
            found[best_i] = True
        false.append(best_i < 0)  # a second box on a face is a false face too
    return found, false


def band(size: float) -> str:
    """The size band of a box whose longer side is `size` px."""
    return "<48" if size < 48 else ("48-96" if size <= 96 else ">96")


def metrics(records: Iterable[Scored], threshold: float = 0.0) -> dict[str, Any]:
    """Recall and precision per band, false faces per kind (per 20 non-face images)."""
    hit = dict.fromkeys(BANDS, 0)
    total = dict.fromkeys(BANDS, 0)
    tp_det = dict.fromkeys(BANDS, 0)
    fp_det = dict.fromkeys(BANDS, 0)
    kinds: dict[str, list[int]] = {}  # kind -> [images, false faces]
    for s in records:
        found, false = _match(s, threshold)
        for f, ok in zip(s.faces, found):
            total[band(max(f[2], f[3]))] += 1
            hit[band(max(f[2], f[3]))] += ok
        dets = sorted((b for b in s.boxes if b[4] >= threshold), key=lambda b: -b[4])
        for d, bad in zip(dets, false):
            (fp_det if bad else tp_det)[band(max(d[2], d[3]))] += 1
        if s.kind != "faces":
            k = kinds.setdefault(s.kind, [0, 0])
            k[0] += 1
            k[1] += sum(false)
    out: dict[str, Any] = {"threshold": threshold}
    for b in BANDS:
        out[f"recall {b}"] = hit[b] / total[b] if total[b] else float("nan")
        out[f"faces {b}"] = total[b]
        n = tp_det[b] + fp_det[b]
        out[f"precision {b}"] = tp_det[b] / n if n else float("nan")
    big = hit["48-96"] + hit[">96"]
    out["recall >=48"] = big / max(1, total["48-96"] + total[">96"])
    out["false faces on face images"] = sum(fp_det.values())
    images = sum(k[0] for k in kinds.values())
    falses = sum(k[1] for k in kinds.values())
    out["false per 20 non-face images"] = 20 * falses / images if images else float("nan")
    for kind, (n_img, n_false) in sorted(kinds.items()):
        out[f"false per 20 {kind}"] = 20 * n_false / n_img
    out["images"] = images
    return out


def table(rows: dict[str, dict[str, Any]]) -> str:
    """A markdown table, one column per named result."""
    keys: list[str] = []
    for r in rows.values():
        keys += [k for k in r if k not in keys]
    head = "| figure | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows) + "\n"
    lines = []
    for k in keys:
        cells = []
        for r in rows.values():
            v = r.get(k, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.faces", description=__doc__)
    p.add_argument("--stack", default="kept", help="kept, or a candidate of faces_candidates")
    p.add_argument("--split", default="both", choices=["calibration", "test", "both"])
    p.add_argument("--sweep", default="", help="comma-separated score thresholds (calibration)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Prints the table of the chosen stack on the calibration and test parts."""
    from benchmarks.faces_candidates import stack

    args = build_parser().parse_args(argv)
    detect = stack(args.stack)
    splits = ["calibration", "test"] if args.split == "both" else [args.split]
    rows: dict[str, dict[str, Any]] = {}
    for split in splits:
        records = run(detect, split)
        seconds = float(np.median([r.seconds for r in records]))
        if args.sweep:
            for t in (float(v) for v in args.sweep.split(",")):
                rows[f"{split} @{t:g}"] = metrics(records, t)
        else:
            rows[split] = metrics(records) | {"median s/image": seconds}
    print(f"stack: {args.stack}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
