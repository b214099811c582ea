"""``python -m benchmarks.faces_calibrate``: the raw material for choosing the photo search's
rule on the CALIBRATION part of the face evaluation set (never the test part).

`dump` runs BlazeFace (short range, score >= 0.3) once per tile of several tile levels (side,
stride) on every calibration image and records each detection not cut by its tile's inner edge,
with the face-presence score of its crop under several crop variants (`VARIANTS`). `evaluate`
then replays any search (a set of levels, thresholds, a presence variant, a rule) from that
record without running a model, so a grid of rules costs nothing; its figures are those of
`benchmarks.faces.metrics`. Detector calls per level are recorded for the cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path("/tmp/emoclip_faces_calibration.json")
LOW = 0.3  # detections scoring less are not recorded
# Tile levels (name -> side as a share of the longer side or pixels, stride as a share of side).
LEVELS: dict[str, tuple[float, float]] = {
    "half": (0.5, 0.5),
    "quarter": (0.25, 0.5),
    "192": (192, 0.5),
    "128": (128, 0.5),
}
VARIANTS = ("m0.5", "m1.0", "flip")


def _tiles(width: int, height: int, side: int, stride: int) -> list[tuple[int, int, int]]:
    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        out = list(range(0, length - side + 1, stride))
        if out[-1] != length - side:
            out.append(length - side)
        return out

    return [(x, y, side) for y in starts(height) for x in starts(width)]


def level_tiles(level: str, width: int, height: int) -> list[tuple[int, int, int]]:
    """The tiles of a named level in a ``width x height`` image."""
    share, stride = LEVELS[level]
    side = int(max(width, height) * share) if share <= 1 else int(share)
    return _tiles(width, height, side, max(1, round(side * stride)))


def _presence(verifier: Any, image: np.ndarray, box: Any, variant: str) -> float:
    from emoclip.faces import FaceBox
    from emoclip.faces.crops import crop_square

    if variant == "flip":
        flipped = np.ascontiguousarray(image[:, ::-1])
        w = image.shape[1]
        return float(verifier.presence(flipped, FaceBox(w - box.x - box.w, box.y, box.w, box.h)))
    margin = float(variant[1:])
    crop = crop_square(image, box, margin=margin, size=192)
    out = verifier.model(crop[None].astype(np.float32) / 255.0)
    logit = float(np.ravel(out["conv2d_31"])[0])
    return float(1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0))))


def dump(shard: int = 0, shards: int = 1) -> None:
    """Record every calibration image's detections per level (see the module) in `CACHE`."""
    from emoclip.faces import FaceBox, FaceDetector
    from emoclip.faces.verify import FaceVerifier
    from emoclip.testing.faces_eval import eval_set

    det, verifier = FaceDetector(LOW), FaceVerifier()
    records = []
    for n, e in enumerate(eval_set("calibration")):
        if n % shards != shard:
            continue
        height, width = e.image.shape[:2]
        levels: dict[str, Any] = {}
        for level in ("whole", *LEVELS):
            tiles = (
                [(0, 0, max(width, height))]
                if level == "whole"
                else level_tiles(level, width, height)
            )
            t0 = time.perf_counter()
            found = []
            for x, y, side in tiles:
                w, h = min(side, width - x), min(side, height - y)
                for b in det.detect(np.ascontiguousarray(e.image[y : y + h, x : x + w])):
                    cut = (
                        (b.x <= 2 and x > 0)
                        or (b.y <= 2 and y > 0)
                        or (b.x + b.w >= w - 2 and x + w < width)
                        or (b.y + b.h >= h - 2 and y + h < height)
                    )
                    if not cut:
                        found.append(FaceBox(b.x + x, b.y + y, b.w, b.h, b.score))
            dt = time.perf_counter() - t0
            boxes = []
            for b in found:
                p = {v: _presence(verifier, e.image, b, v) for v in VARIANTS}
                boxes.append([b.x, b.y, b.w, b.h, b.score, p])
            levels[level] = {"calls": len(tiles), "seconds": dt, "boxes": boxes}
        records.append(
            {
                "name": e.name,
                "kind": e.kind,
                "size": [width, height],
                "faces": e.faces,
                "levels": levels,
            }
        )
        print(n, e.name, {k: len(v["boxes"]) for k, v in levels.items()}, file=sys.stderr)
    Path(f"{CACHE}.{shard}").write_text(json.dumps(records))


@dataclass(frozen=True)
class Rule:
    """A search and its check, replayed from the record."""

    levels: tuple[str, ...] = ("half", "quarter")
    search: float = 0.5  # candidate score
    hi: float = 0.99  # presence that makes a face
    sure: float = 0.8  # ... or this score with presence >= lo
    lo: float = 0.001
    variant: str = "m0.5"  # presence crop; "max:a,b" = the larger of two
    mid_score: float = 2.0  # a third way in: score >= mid_score and presence >= mid
    mid: float = 1.0


def _p(p: dict[str, float], variant: str) -> float:
    if variant.startswith("max:"):
        return max(p[v] for v in variant[4:].split(","))
    return p[variant]


def candidates(levels: tuple[str, ...], records: list[dict[str, Any]]) -> list[list[Any]]:
    """Per image, the search's candidates over `levels` after suppression: (FaceBox, presences)."""
    from emoclip.faces import FaceBox
    from emoclip.faces.search import suppress

    out = []
    for r in records:
        raw, pres = [], {}
        for level in ("whole", *levels):
            for x, y, w, h, s, p in r["levels"][level]["boxes"]:
                raw.append(FaceBox(x, y, w, h, s))
                pres[(x, y, w, h, s)] = p
        out.append([(b, pres[(b.x, b.y, b.w, b.h, b.score)]) for b in suppress(raw, 0.5)])
    return out


_CANDS: dict[tuple[str, ...], list[list[Any]]] = {}


def replay(rule: Rule, records: list[dict[str, Any]]) -> tuple[list[Any], float]:
    """`benchmarks.faces.Scored` per image under `rule`, and the mean detector calls per image."""
    from benchmarks.faces import Scored
    from emoclip.faces import FaceBox
    from emoclip.faces.search import suppress

    if rule.levels not in _CANDS:
        _CANDS[rule.levels] = candidates(rule.levels, records)
    out, calls = [], 0
    for r, cands in zip(records, _CANDS[rule.levels]):
        calls += sum(r["levels"][lv]["calls"] for lv in ("whole", *rule.levels))
        kept = []
        for b, pres in cands:
            if b.score < rule.search:
                continue
            p = _p(pres, rule.variant)
            ok = (
                p >= rule.hi
                or (b.score >= rule.sure and p >= rule.lo)
                or (b.score >= rule.mid_score and p >= rule.mid)
            )
            if ok:
                kept.append(FaceBox(b.x, b.y, b.w, b.h, p))
        kept = suppress(kept, 0.3)
        boxes = [(b.x, b.y, b.w, b.h, 1.0) for b in kept]
        out.append(Scored(r["name"], r["kind"], [tuple(f) for f in r["faces"]], boxes))
    return out, calls / max(1, len(records))


def evaluate(rule: Rule, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of `rule` on the recorded calibration part (`benchmarks.faces.metrics`)."""
    from benchmarks.faces import metrics

    scored, calls = replay(rule, records)
    return metrics(scored) | {"calls/image": calls}


# The rules measured (benchmarks/README.md, "Faces in the wild"); "kept" is the library's.
RULES: dict[str, Rule] = {
    "previous: tiles within 42 calls, crop presence": Rule(),
    "previous + mirrored crop (kept)": Rule(variant="max:m0.5,flip"),
    "previous, presence on the mirrored crop only": Rule(variant="flip"),
    "previous, presence on a crop with twice the context": Rule(variant="m1.0"),
    "previous, the better of crop and wider crop": Rule(variant="max:m0.5,m1.0"),
    "no check, 42 calls": Rule(hi=0.0),
    "kept + 192 px tiles (107 calls)": Rule(("half", "quarter", "192"), variant="max:m0.5,flip"),
    "kept + 128 px tiles (207 calls)": Rule(("half", "quarter", "128"), variant="max:m0.5,flip"),
    "no check, 207 calls": Rule(("half", "quarter", "128"), hi=0.0),
    "kept + 128 px tiles, score >= 0.6": Rule(
        ("half", "quarter", "128"), search=0.6, variant="max:m0.5,flip"
    ),
}


def grid(records: list[dict[str, Any]], levels: tuple[str, ...]) -> list[tuple[Rule, Any]]:
    """The grid searched over `levels` (score x crop x presence x sure score x its presence),
    rules with at most 1 false face per 20 non-face images, most recall >= 48 px first."""
    import itertools

    out = []
    for search, variant, hi, sure, lo in itertools.product(
        (0.5, 0.6),
        ("m0.5", "flip", "max:m0.5,flip"),
        (0.9, 0.97, 0.99, 0.999),
        (0.6, 0.7, 0.8, 0.9),
        (0.001, 0.01, 0.05),
    ):
        rule = Rule(levels, search, hi, sure, lo, variant)
        f = evaluate(rule, records)
        if f["false per 20 non-face images"] <= 1.0:
            out.append((rule, f))
    out.sort(key=lambda rf: (-rf[1]["recall >=48"], -rf[1]["recall <48"]))
    return out


def load() -> list[dict[str, Any]]:
    """The recorded calibration part, from every shard's file."""
    return [
        r for f in sorted(CACHE.parent.glob(CACHE.name + ".*")) for r in json.loads(f.read_text())
    ]


def main(argv: list[str] | None = None) -> int:
    """Record (``--dump``, slow: run it in shards) or print the figures of `RULES` and the grid."""
    from benchmarks.faces import table

    p = argparse.ArgumentParser(prog="python -m benchmarks.faces_calibrate", description=__doc__)
    p.add_argument("--dump", action="store_true", help="record the calibration part")
    p.add_argument("--shard", default="0/1", help="i/n: record every n-th image from the i-th")
    p.add_argument("--grid", default="", help="levels of a grid to print, e.g. half,quarter")
    args = p.parse_args(argv)
    if args.dump:
        i, n = (int(v) for v in args.shard.split("/"))
        dump(i, n)
        return 0
    records = load()
    if args.grid:
        for rule, f in grid(records, tuple(args.grid.split(",")))[:20]:
            print(rule, {k: round(f[k], 3) for k in ("recall <48", "recall >=48")})
        return 0
    keys = ("recall <48", "recall >=48", "false per 20 non-face images")
    keys += ("false faces on face images", "calls/image")
    rows = {name: {k: evaluate(rule, records)[k] for k in keys} for name, rule in RULES.items()}
    print(table({k: {n: r[k] for n, r in rows.items()} for k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
