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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path("/tmp/faces-dumps/blazeface.json")  # outside git; one file per shard (".0", ...)
LOW = 0.4  # detections scoring less are not recorded
# Tile levels (name -> side as a share of the longer side or pixels, stride as a share of side).
LEVELS: dict[str, tuple[float, float]] = {
    "half": (0.5, 0.5),
    "quarter": (0.25, 0.5),
    "eighth": (0.125, 0.5),
    "192": (192, 0.5),
    "128": (128, 0.5),
    "128s80": (128, 0.625),
}
VARIANTS = ("m0.5", "flip", "haar", "haarp")
MTCNN_CACHE = CACHE.parent / "mtcnn.json"  # MTCNN's probabilities of the recorded boxes


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


_HAAR: dict[str, Any] = {}


def _haar(image: np.ndarray, box: Any, cascade: str) -> float:
    """1.0 when OpenCV's shipped Haar `cascade` finds a face in the box's crop (+50 %, 96 px),
    or in the mirrored crop (profile: the cascade knows one side only); else 0.0."""
    import cv2

    from emoclip.faces.crops import crop_square

    if cascade not in _HAAR:
        path = cv2.data.haarcascades + cascade  # type: ignore[attr-defined]
        _HAAR[cascade] = cv2.CascadeClassifier(path)
    gray = cv2.cvtColor(crop_square(image, box, margin=0.5, size=96), cv2.COLOR_RGB2GRAY)
    for g in (gray, gray[:, ::-1].copy()):
        if len(_HAAR[cascade].detectMultiScale(g, 1.1, 3, minSize=(32, 32))):
            return 1.0
    return 0.0


def _presence(verifier: Any, image: np.ndarray, box: Any, variant: str) -> float:
    from emoclip.faces import FaceBox

    if variant == "haar":
        return _haar(image, box, "haarcascade_frontalface_default.xml")
    if variant == "haarp":
        return _haar(image, box, "haarcascade_profileface.xml")
    if variant == "flip":
        flipped = np.ascontiguousarray(image[:, ::-1])
        w = image.shape[1]
        return float(verifier.presence(flipped, FaceBox(w - box.x - box.w, box.y, box.w, box.h)))
    return float(verifier.presence(image, box))


def dump(shard: int = 0, shards: int = 1) -> None:
    """Record every calibration image's detections per level (see the module) in `CACHE`:
    BlazeFace run directly by LiteRT (`emoclip.faces.blazeface`), its keypoints, and each
    box's checks (`VARIANTS`), computed once per distinct box."""
    from emoclip.faces.blazeface import BlazeFace
    from emoclip.faces.verify import FaceVerifier
    from emoclip.testing.faces_eval import eval_set

    det, verifier = BlazeFace(LOW), FaceVerifier()
    records = []
    for n, e in enumerate(eval_set("calibration")):
        if n % shards != shard:
            continue
        height, width = e.image.shape[:2]
        levels: dict[str, Any] = {}
        checked: dict[tuple[int, ...], dict[str, float]] = {}
        for level in ("whole", *LEVELS):
            tiles = (
                [(0, 0, max(width, height))]
                if level == "whole"
                else level_tiles(level, width, height)
            )
            t0 = time.perf_counter()
            crops = [
                np.ascontiguousarray(e.image[y : y + side, x : x + side]) for x, y, side in tiles
            ]
            found = []
            for (x, y, _), crop, dets in zip(tiles, crops, det.detect_many(crops)):
                h, w = crop.shape[:2]
                for d in dets:
                    b = d.box
                    cut = (
                        (b.x <= 2 and x > 0)
                        or (b.y <= 2 and y > 0)
                        or (b.x + b.w >= w - 2 and x + w < width)
                        or (b.y + b.h >= h - 2 and y + h < height)
                    )
                    if not cut:
                        kp = (d.keypoints + np.array([x, y], np.float32)).round(1).tolist()
                        found.append((type(b)(b.x + x, b.y + y, b.w, b.h, b.score), kp))
            dt = time.perf_counter() - t0
            boxes = []
            for b, kp in found:
                key = (round(b.x), round(b.y), round(b.w), round(b.h))
                if key not in checked:
                    checked[key] = {v: _presence(verifier, e.image, b, v) for v in VARIANTS}
                boxes.append([b.x, b.y, b.w, b.h, b.score, checked[key], kp])
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
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{CACHE}.{shard}").write_text(json.dumps(records))


def mtcnn_key(box: Any) -> str:
    """A recorded box's key in `MTCNN_CACHE` (its x, y, w, h and score)."""
    return ",".join(repr(float(v)) for v in box[:5])


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
    need: str = ""  # ... and this second-stage check: "support:K" (K raw detections across
    # tiles and levels), "haar" / "haarp" (OpenCV's frontal / profile cascade), "geo" (keypoints),
    # "V>=T" (MTCNN variant V, `MTCNN_VARIANTS` or "max:a,b", has probability >= T)
    alt: tuple[str, float, float, float] | None = None  # a fourth way in: (MTCNN variant, its
    # probability, score, presence): score, presence and MTCNN probability at least these


def _geometry(b: Any, kp: list[list[float]]) -> bool:
    """BlazeFace's keypoints look like a face in its box: eyes above the nose above the mouth,
    eyes apart by at least a sixth of the box, all inside the box."""
    (rx, ry), (lx, ly), (_, ny), (_, my) = kp[0], kp[1], kp[2], kp[3]
    inside = all(
        b.x - 0.1 * b.w <= x <= b.x + 1.1 * b.w and b.y - 0.1 * b.h <= y <= b.y + 1.1 * b.h
        for x, y in kp[:4]
    )
    return inside and max(ry, ly) < ny < my and abs(lx - rx) >= b.w / 6


def _overlap(a: Any, b: Any) -> float:
    """Intersection over the smaller box (the search's `suppress` measure)."""
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0 else 0.0


def _passes(need: str, b: Any, pres: dict[str, Any]) -> bool:
    if not need:
        return True
    if need.startswith("support:"):
        return bool(pres["support"] >= int(need[8:]))
    if need == "geo":
        return _geometry(b, pres["kp"])
    if ">=" in need:
        variant, t = need.split(">=")
        return _p(pres, variant) >= float(t)
    return bool(pres[need] > 0.5)


def _p(p: dict[str, float], variant: str) -> float:
    if variant.startswith("max:"):
        return max(p[v] for v in variant[4:].split(","))
    return p[variant]


def candidates(
    levels: tuple[str, ...], records: list[dict[str, Any]], low: float = LOW
) -> list[list[Any]]:
    """Per image, the search's candidates over `levels` (detections scoring at least `low`,
    as the library's detector keeps them) after suppression: (FaceBox, checks), the checks
    with the keypoints (``kp``) and the raw detections overlapping the box (``support``)."""
    from emoclip.faces import FaceBox
    from emoclip.faces.search import suppress

    out = []
    for r in records:
        raw, pres = [], {}
        for level in ("whole", *levels):
            for x, y, w, h, s, p, *kp in r["levels"][level]["boxes"]:
                if s >= low:
                    raw.append(FaceBox(x, y, w, h, s))
                    pres[(x, y, w, h, s)] = p | {"kp": kp[0] if kp else []}
        kept = []
        for b in suppress(raw, 0.5):
            support = sum(_overlap(b, o) > 0.5 for o in raw)  # as `suppress` merges them
            kept.append((b, pres[(b.x, b.y, b.w, b.h, b.score)] | {"support": support}))
        out.append(kept)
    return out


_CANDS: dict[tuple[tuple[str, ...], float], list[list[Any]]] = {}


def replay(rule: Rule, records: list[dict[str, Any]]) -> tuple[list[Any], float]:
    """`benchmarks.faces.Scored` per image under `rule`, and the mean detector calls per image."""
    from benchmarks.faces import Scored
    from emoclip.faces import FaceBox
    from emoclip.faces.search import suppress

    key = (rule.levels, rule.search)
    if key not in _CANDS:
        _CANDS[key] = candidates(rule.levels, records, rule.search)
    out, calls = [], 0
    for r, cands in zip(records, _CANDS[key]):
        calls += sum(r["levels"][lv]["calls"] for lv in ("whole", *rule.levels))
        kept = []
        for b, pres in cands:
            if b.score < rule.search:
                continue
            p = _p(pres, rule.variant)
            ok = (
                p >= rule.hi
                or (b.score >= rule.sure and p >= rule.lo)
                or (b.score >= rule.mid_score and p >= rule.mid and _passes(rule.need, b, pres))
                or (
                    rule.alt is not None
                    and b.score >= rule.alt[2]
                    and p >= rule.alt[3]
                    and _p(pres, rule.alt[0]) >= rule.alt[1]
                )
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


# The rules measured (benchmarks/README.md, "Faces in the wild"), replayed from the BlazeFace
# record; "kept" is the library's.
_FLIP = "max:m0.5,flip"
_FINE = ("half", "quarter", "eighth")
# The third round's rule: score >= 0.6; presence >= 0.99, or score >= 0.8 and presence >=
# 0.001, or score >= 0.65, presence >= 0.1 and the profile cascade says a face.
THIRD = Rule(("half", "quarter", "128"), 0.6, 0.99, 0.8, 0.001, _FLIP, 0.65, 0.1, "haarp")
# The library's rule (emoclip.faces.search, fourth round: `benchmarks.faces_mtcnn`): the third
# round's, or score >= 0.75 and MTCNN's ONet >= 0.95 on the box's square crop.
KEPT = replace(THIRD, alt=("onet", 0.95, 0.75, 0.0))
RULES: dict[str, Rule] = {
    "previous rule, tiles half + quarter (42 calls on 4:3)": Rule(variant=_FLIP, search=0.5),
    "no check, half + quarter": Rule(hi=0.0, search=0.5),
    "previous rule + eighth tiles (207 calls on 4:3)": Rule(_FINE, variant=_FLIP, search=0.5),
    "previous rule + 192 px tiles": Rule(("half", "quarter", "192"), variant=_FLIP, search=0.5),
    "previous rule + 128 px tiles, stride 80": Rule(
        ("half", "quarter", "128s80"), variant=_FLIP, search=0.5
    ),
    "no check, + eighth tiles": Rule(_FINE, hi=0.0, search=0.5),
    "previous rule + 128 px tiles (the library's fine level)": Rule(
        ("half", "quarter", "128"), variant=_FLIP, search=0.5
    ),
    "the same, score >= 0.6": Rule(("half", "quarter", "128"), variant=_FLIP, search=0.6),
    "third: + profile cascade (score >= 0.65, presence >= 0.1)": THIRD,
    "third, frontal cascade in its place": replace(THIRD, need="haar"),
    "third, 3 detections across tiles in its place": replace(THIRD, need="support:3"),
    "third, keypoint geometry in its place": replace(THIRD, need="geo"),
    "third, fine tiles every 80 px": replace(THIRD, levels=("half", "quarter", "128s80")),
    "third without the fine level": replace(THIRD, levels=("half", "quarter")),
    "kept: third + (score >= 0.75 and ONet >= 0.95)": KEPT,
    "no check, 128 px tiles": Rule(("half", "quarter", "128"), hi=0.0, search=0.6),
}


def grid(records: list[dict[str, Any]], levels: tuple[str, ...]) -> list[tuple[Rule, Any]]:
    """The grid searched over `levels`: score x crop x presence x sure score x its presence,
    then, on the five best, a third way in (score x presence x second-stage check, `Rule.need`);
    rules with at most 1 false face per 20 non-face images, most recall >= 48 px first."""
    import itertools

    def best(rules: Any) -> list[tuple[Rule, Any]]:
        out = []
        for rule in rules:
            f = evaluate(rule, records)
            if f["false per 20 non-face images"] <= 1.0:
                out.append((rule, f))
        out.sort(key=lambda rf: (-rf[1]["recall >=48"], -rf[1]["recall <48"]))
        return out

    base = best(
        Rule(levels, search, hi, sure, lo, variant)
        for search, variant, hi, sure, lo in itertools.product(
            (0.4, 0.5, 0.6),
            ("m0.5", _FLIP),
            (0.9, 0.97, 0.99, 0.999),
            (0.6, 0.7, 0.8, 0.9),
            (0.001, 0.01, 0.05),
        )
    )
    needs = ("support:2", "support:3", "support:4", "support:6", "haar", "haarp", "geo")
    third = best(
        Rule(r.levels, r.search, r.hi, r.sure, r.lo, r.variant, mid_score, mid, need)
        for (r, _), mid_score, mid, need in itertools.product(
            base[:5], (0.5, 0.6, 0.7), (0.0, 0.01, 0.1, 0.3, 0.5), needs
        )
    )
    return sorted(base + third, key=lambda rf: (-rf[1]["recall >=48"], -rf[1]["recall <48"]))


def load(mtcnn: bool = True) -> list[dict[str, Any]]:
    """The recorded calibration part, from every shard's file, with MTCNN's probabilities of
    each box merged into its checks when `MTCNN_CACHE` exists (and `mtcnn`)."""
    records = [
        r for f in sorted(CACHE.parent.glob(CACHE.name + ".*")) for r in json.loads(f.read_text())
    ]
    if mtcnn and MTCNN_CACHE.is_file():
        probs = json.loads(MTCNN_CACHE.read_text())
        for r in records:
            for lv in r["levels"].values():
                for b in lv["boxes"]:
                    b[5] = b[5] | probs[r["name"]][mtcnn_key(b)]
    return records


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
        for rule, f in grid(records, tuple(args.grid.split(",")))[:25]:
            keys = ("recall <48", "recall >=48", "false per 20 non-face images")
            print(rule, {k: round(f[k], 3) for k in (*keys, "false faces on face images")})
        return 0
    keys = ("recall <48", "recall >=48", "false per 20 non-face images")
    keys += ("false faces on face images", "calls/image")
    rows = {name: {k: evaluate(rule, records)[k] for k in keys} for name, rule in RULES.items()}
    print(table({k: {n: r[k] for n, r in rows.items()} for k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
