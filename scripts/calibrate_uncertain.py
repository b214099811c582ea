"""Choose `emoclip.evidence.words.UNCERTAIN_MARGIN` on calibration data the tests never assert on.

The shipped synthetic toy model scores fresh clips of the synthetic generator's validation classes
(`emoclip.train.synthetic.VALIDATION`, seed 777, 16 frames at the toy's 4 fps) against all
twelve synthetic classes. The toy is right on every validation clip drawn at 64 px (160 of 160),
so the calibration clips are drawn at SIZE px (upscaled by the predictor): blurrier cues, where
answers can be wrong. Rule: the uncertain margin m is the one that best separates wrong answers
from right ones (Youden's J: the share of wrong answers with a margin below m minus the share of
right answers below m, largest), placed halfway between the two observed margins it falls between;
the run's table and the chosen value are printed (docs/evidence.md records them).

    python scripts/calibrate_uncertain.py [--clips 160] [--seed 777]
"""

from __future__ import annotations

import argparse

import numpy as np

import emoclip
from emoclip.train import synthetic

SIZE = 32  # pixels


def margins(clips: int, seed: int) -> list[tuple[float, bool]]:
    """(margin, answer right) per calibration clip."""
    model = emoclip.load_model("weights/emoclip-synthetic-tiny.safetensors")
    predictor = emoclip.EmotionPredictor(model)
    classes = emoclip.ClassSet.from_dict(
        {"name": "synthetic-all", "classes": synthetic.class_descriptions("all")}
    )
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(clips):
        frames, _, label = synthetic.sample(rng, split="validation", num_frames=16, size=SIZE)
        pred = predictor.predict(frames, classes, fps=model.config.preprocess.sample_fps)
        assert pred.evidence is not None
        out.append((pred.evidence.margin, pred.top == label))
    return out


def choose(results: list[tuple[float, bool]]) -> float:
    """The rule of the module docstring (0.0 when every answer is right or every one wrong)."""
    ordered = sorted(results)
    wrong = sum(not ok for _, ok in ordered)
    right = len(ordered) - wrong
    if not wrong or not right:
        return 0.0
    best, best_j = 0.0, 0.0
    for k in range(1, len(ordered)):  # m between ordered[k-1] and ordered[k]: k clips below it
        below_wrong = sum(not ok for _, ok in ordered[:k])
        j = below_wrong / wrong - (k - below_wrong) / right
        if j > best_j:
            best, best_j = (ordered[k - 1][0] + ordered[k][0]) / 2, j
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=160)
    parser.add_argument("--seed", type=int, default=777)
    args = parser.parse_args()
    results = margins(args.clips, args.seed)
    for lo, hi in [(0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 0.7), (0.7, 1.01)]:
        sel = [ok for m, ok in results if lo <= m < hi]
        acc = f"{sum(sel) / len(sel):.2f}" if sel else "-"
        print(f"margin {lo:.2f}-{hi:.2f}: {len(sel):3d} clips, right {acc}")
    print(f"accuracy {np.mean([ok for _, ok in results]):.3f} over {len(results)} clips")
    print(f"uncertain margin: {choose(results):.3f}")


if __name__ == "__main__":
    main()
