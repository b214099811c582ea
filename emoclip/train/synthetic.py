"""Synthetic captioned-expression dataset: procedurally drawn cartoon faces.

Every clip is a face crop (the face fills the frame) whose expression unfolds over time: it
starts near neutral, eases into a target expression over the first ~30-50 % of the clip and then
holds it with small jitter. An expression is a combination of three nearly independent cues
(`CUES`): the mouth (smile, frown, open as in a gasp, flat), the brows (raised, furrowed,
neutral) and the eyes (wide, narrowed, normal). Nuisance factors are drawn per clip: skin,
background, line and eye colours, face position and scale, slow head motion (translation and
rotation), line thickness, brightness and Gaussian pixel noise.

Each clip comes with a sample-level caption (like MAFW's) that describes the cues with a shared
vocabulary: synonyms, random cue order, sometimes a dropped cue, noun-phrase and clause styles.
Twelve named classes (`CLASSES`) are cue combinations with natural-language descriptions, split
three ways: seen (4), validation (`VALIDATION`, 4: the signal while the recipe was tuned and the
periodic evaluation of a run) and test (`TEST`, 4: scored only at the end, on fresh clips).
Validation and test classes (`HELDOUT`) never occur in training, whose combinations are drawn
uniformly from the 36 - 8 = 28 others. Covering many combinations is what lets a model trained on
captions recognise the held-out classes zero-shot from their descriptions (design.md,
"Synthetic"). The test classes also have paraphrased descriptions (`paraphrase_descriptions`)
whose words never occur in a caption.

Everything is drawn with OpenCV primitives at the requested size (never upscaled), so sampling is
fast enough to draw fresh clips at every training step. Same generator state, same clip.

The cues and `Expression` live in `synthetic_cues`, the caption vocabulary in
`synthetic_captions` and the cartoon-face renderer in `synthetic_drawing`; import them from there.

Command line::

    python -m emoclip.train.synthetic --out DIR --clips N --seed S [--split train|seen|validation|test|heldout|all]
        [--size 128] [--frames 32] [--fps 8]
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
from pathlib import Path

import cv2
import numpy as np
import yaml

from emoclip.quiet import quiet_native_stderr
from emoclip.train.synthetic_captions import caption
from emoclip.train.synthetic_cues import CUES, Expression
from emoclip.train.synthetic_drawing import render_clip

__all__ = [
    "CLASSES",
    "VALIDATION",
    "TEST",
    "HELDOUT",
    "SPLITS",
    "class_descriptions",
    "paraphrase_descriptions",
    "training_expressions",
    "sample",
    "write_dataset",
    "main",
]

SPLITS = ("train", "seen", "validation", "test", "heldout", "all")


CLASSES: dict[str, Expression] = {
    "neutral": Expression("flat", "neutral", "normal"),
    "happiness": Expression("smile", "neutral", "normal"),
    "delight": Expression("smile", "raised", "wide"),
    "contempt": Expression("smile", "neutral", "narrowed"),
    "sadness": Expression("frown", "raised", "normal"),
    "disgust": Expression("frown", "furrowed", "narrowed"),
    "anger": Expression("flat", "furrowed", "narrowed"),
    "anxiety": Expression("flat", "furrowed", "wide"),
    "boredom": Expression("flat", "neutral", "narrowed"),
    "surprise": Expression("open", "raised", "wide"),
    "fear": Expression("open", "furrowed", "wide"),
    "rage": Expression("open", "furrowed", "narrowed"),
}

# Three-way split of the named classes. Training never draws the cue combination of a validation
# or test class. VALIDATION holds the four classes that were the held-out signal while the recipe was
# tuned (one per mouth shape, so each needs at least two cues to be told apart from its nearest seen
# class); TEST holds four other classes, one per mouth shape, that nothing was tuned on: they are
# only scored at the end of a run (data split "test") and by the slow test. Every pair of cue
# values of a validation or test class still occurs in training (tests/test_synthetic.py), so each
# is a new combination of cues seen in training.
VALIDATION: tuple[str, ...] = ("contempt", "disgust", "anxiety", "surprise")
TEST: tuple[str, ...] = ("delight", "sadness", "boredom", "rage")
HELDOUT: tuple[str, ...] = VALIDATION + TEST  # never drawn in training

# Written by hand in the authors' style; same vocabulary as the captions, never a caption's text
# (no caption starts with "A facial expression").
_DESCRIPTIONS: dict[str, str] = {
    "neutral": "A facial expression with a closed, straight mouth, level eyebrows at rest and "
    "calm, ordinary eyes",
    "happiness": "A facial expression with a smile, the corners of the mouth turned up, level "
    "eyebrows and calm, ordinary eyes",
    "delight": "A facial expression with a broad smile, raised eyebrows and eyes opened wide",
    "contempt": "A facial expression with a slight smile turned up at the corners, level "
    "eyebrows and narrowed, squinting eyes",
    "sadness": "A facial expression with a downturned mouth in a frown, raised eyebrows and "
    "ordinary, calm eyes",
    "disgust": "A facial expression with a frown, the mouth turned down, furrowed eyebrows "
    "drawn together and narrowed eyes",
    "anger": "A facial expression with lips pressed into a straight line, lowered, furrowed "
    "brows and narrowed eyes",
    "anxiety": "A facial expression with a tight, straight mouth, furrowed eyebrows drawn "
    "together and wide-open eyes",
    "boredom": "A facial expression with a flat, closed mouth, level eyebrows and half-closed, "
    "heavy-lidded eyes",
    "surprise": "A facial expression with wide-open eyes, raised eyebrows and the mouth dropped "
    "open in a gasp",
    "fear": "A facial expression with an open mouth, furrowed, knitted eyebrows and eyes opened "
    "wide",
    "rage": "A facial expression with a gaping open mouth, lowered, furrowed brows and "
    "narrowed eyes",
}


# The test classes once more, in words no caption uses (not even their stems: no "lip", "brow"
# or "eye") and in sentence shapes no caption has (a mood word, a colon or semicolons, participle
# phrases). The text tower is trained from scratch on captions only, so these measure how far its
# zero-shot matching carries beyond the caption vocabulary (reported separately as the paraphrase
# test; tests/test_synthetic.py checks the vocabulary).
_PARAPHRASES: dict[str, str] = {
    "delight": "Ecstatic, beaming countenance: cheeks bunched into a joyful crescent, forehead "
    "hoisted skyward, peepers bulging",
    "sadness": "Glum, dejected countenance: a sagging pout, forehead hoisted skyward, "
    "a relaxed, unremarkable gaze",
    "boredom": "Listless countenance: a motionless, sealed, horizontal kisser, forehead "
    "relaxed, a sleepy, lethargic gaze",
    "rage": "Livid countenance; teeth bared, maw agape; forehead crumpled in a scowl; "
    "peepers pinched into thin cracks",
}


def class_descriptions(which: str = "all", *, paraphrased: bool = False) -> dict[str, str]:
    """Class names and their descriptions.

    Args:
        which: "seen" (classes that occur in training), "validation" (`VALIDATION`), "test"
            (`TEST`), "heldout" (both, `HELDOUT`) or "all".
        paraphrased: Describe the test classes with `paraphrase_descriptions` (wording never used
            in training captions) instead of the caption vocabulary; other classes unchanged.

    Returns:
        ``{class name: description}`` in `CLASSES` order.
    """
    keep = {
        "all": lambda name: True,
        "seen": lambda name: name not in HELDOUT,
        "validation": lambda name: name in VALIDATION,
        "test": lambda name: name in TEST,
        "heldout": lambda name: name in HELDOUT,
    }
    if which not in keep:
        raise ValueError(f"which must be one of {tuple(keep)}, got {which!r}")
    texts = {**_DESCRIPTIONS, **(_PARAPHRASES if paraphrased else {})}
    return {name: texts[name] for name in CLASSES if keep[which](name)}


def paraphrase_descriptions() -> dict[str, str]:
    """The test classes described in words and sentence shapes that no training caption uses.

    Returns:
        ``{test class name: paraphrase}`` in `CLASSES` order.
    """
    return {name: _PARAPHRASES[name] for name in CLASSES if name in TEST}


def training_expressions() -> list[Expression]:
    """Every cue combination except the validation and test classes' (28 of 36), in a fixed order."""
    held = {CLASSES[name] for name in HELDOUT}
    combos = (Expression(*values) for values in itertools.product(*CUES.values()))
    return [expr for expr in combos if expr not in held]


_LABELS: dict[Expression, str] = {expr: name for name, expr in CLASSES.items()}


@functools.cache
def _split_pool(split: str) -> tuple[Expression, ...]:
    """The expressions a split draws from, uniformly."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "train":
        return tuple(training_expressions())
    return tuple(CLASSES[name] for name in class_descriptions(split))


def sample(
    rng: np.random.Generator, *, split: str = "train", num_frames: int = 16, size: int = 64
) -> tuple[np.ndarray, str, str | None]:
    """Draw one captioned clip.

    Args:
        rng: Random generator (the only source of randomness).
        split: "train": any combination except the validation and test classes' (uniform over
            28); "seen", "validation", "test": a class of that split; "heldout": a validation or
            test class; "all": any of the 12 classes.
        num_frames: Number of frames T.
        size: Frame side S in pixels.

    Returns:
        ``(frames, caption, label)``: frames uint8 (T, S, S, 3) RGB; label is the class name
        when the combination is a named class, else None.
    """
    pool = _split_pool(split)
    expr = pool[int(rng.integers(len(pool)))]
    text = caption(expr, rng)
    frames = render_clip(expr, rng, num_frames=num_frames, size=size)
    return frames, text, _LABELS.get(expr)


# --------------------------------------------------------------------------------------------
# Writing a dataset to disk
# --------------------------------------------------------------------------------------------


def _write_webm(path: Path, frames: np.ndarray, fps: float) -> None:
    size = frames.shape[2], frames.shape[1]
    with quiet_native_stderr():  # FFmpeg: harmless "tag 'VP80' is not supported ..." line
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"VP80"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write VP8 video to {path} (built without FFmpeg?)")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


CLASS_SET_FILES: dict[str, tuple[str, bool]] = {
    # file stem -> (class_descriptions split, paraphrased)
    "classes_seen": ("seen", False),
    "classes_validation": ("validation", False),
    "classes_test": ("test", False),
    "classes_heldout": ("heldout", False),
    "classes_all": ("all", False),
    "classes_all_paraphrased": ("all", True),
}


def _write_class_sets(out: Path) -> None:
    for stem, (which, paraphrased) in CLASS_SET_FILES.items():
        name = "synthetic-" + stem.removeprefix("classes_").replace("_", "-")
        doc = {"name": name, "classes": class_descriptions(which, paraphrased=paraphrased)}
        with open(out / f"{stem}.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(doc, f, allow_unicode=True, sort_keys=False, width=1000)


def write_dataset(
    out: Path,
    *,
    clips: int,
    seed: int,
    split: str = "train",
    size: int = 128,
    num_frames: int = 32,
    fps: float = 8.0,
) -> Path:
    """Write a captioned synthetic dataset in the generic manifest layout.

    Writes ``out/clips/000000.webm, ...`` (VP8), ``out/manifest.csv`` (columns path, caption,
    label; path relative to `out`; label empty for unnamed combinations) and the class sets
    ``out/classes_{seen,validation,test,heldout,all}.yaml`` plus ``out/classes_all_paraphrased.yaml``
    (all 12, the test classes described by their paraphrases). Clip i depends only on (seed, i).

    Returns:
        The manifest path.
    """
    _split_pool(split)  # validate before writing anything
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    children = np.random.SeedSequence(seed).spawn(clips)
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        rows = csv.writer(f)
        rows.writerow(["path", "caption", "label"])
        for i, child in enumerate(children):
            frames, text, label = sample(
                np.random.default_rng(child), split=split, num_frames=num_frames, size=size
            )
            rel = f"clips/{i:06d}.webm"
            _write_webm(out / rel, frames, fps)
            rows.writerow([rel, text, label or ""])
    _write_class_sets(out)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m emoclip.train.synthetic",
        description="Write a synthetic captioned-expression video dataset.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--clips", type=int, required=True, help="number of clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip")
    parser.add_argument("--fps", type=float, default=8.0)
    args = parser.parse_args(argv)
    manifest = write_dataset(
        args.out,
        clips=args.clips,
        seed=args.seed,
        split=args.split,
        size=args.size,
        num_frames=args.frames,
        fps=args.fps,
    )
    print(manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
