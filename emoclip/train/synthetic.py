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

Command line::

    python -m emoclip.train.synthetic --out DIR --clips N --seed S [--split train|seen|validation|test|heldout|all]
        [--size 128] [--frames 32] [--fps 8]
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..quiet import quiet_native_stderr

__all__ = [
    "CUES",
    "CLASSES",
    "VALIDATION",
    "TEST",
    "HELDOUT",
    "SPLITS",
    "Expression",
    "class_descriptions",
    "paraphrase_descriptions",
    "training_expressions",
    "caption",
    "render_clip",
    "sample",
    "write_dataset",
    "main",
]

CUES: dict[str, tuple[str, ...]] = {
    "mouth": ("smile", "frown", "open", "flat"),
    "brows": ("raised", "furrowed", "neutral"),
    "eyes": ("wide", "narrowed", "normal"),
}

SPLITS = ("train", "seen", "validation", "test", "heldout", "all")


@dataclass(frozen=True)
class Expression:
    """One combination of cue values, e.g. ``Expression("smile", "raised", "wide")``."""

    mouth: str
    brows: str
    eyes: str

    def __post_init__(self) -> None:
        for cue, values in CUES.items():
            if getattr(self, cue) not in values:
                raise ValueError(f"{cue}={getattr(self, cue)!r} is not one of {values}")


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


# --------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------

# Per cue value: noun phrases, and clauses as (subject, predicate) so that they read both as
# "the eyes narrow" and as "a face whose eyes narrow". The neutral values get stative verbs.
_NOUNS: dict[str, dict[str, tuple[str, ...]]] = {
    "mouth": {
        "smile": (
            "a smile",
            "a wide smile",
            "a broad grin",
            "a slight smile",
            "upturned lips",
            "a mouth turned up at the corners",
            "a grin",
        ),
        "frown": (
            "a frown",
            "a downturned mouth",
            "a deep frown",
            "lips turned down",
            "a mouth turned down at the corners",
            "a sulky, downturned mouth",
        ),
        "open": (
            "an open mouth",
            "a gaping mouth",
            "a gasp",
            "a round, open mouth",
            "a mouth dropped open",
            "an O-shaped mouth",
        ),
        "flat": (
            "a flat mouth",
            "a closed, straight mouth",
            "lips pressed into a straight line",
            "a tight, straight mouth",
            "a closed mouth",
            "a flat, even mouth",
        ),
    },
    "brows": {
        "raised": (
            "raised eyebrows",
            "lifted brows",
            "arched eyebrows",
            "high, raised brows",
            "eyebrows pulled up",
        ),
        "furrowed": (
            "furrowed brows",
            "lowered eyebrows",
            "knitted brows",
            "eyebrows drawn together",
            "a furrowed brow",
            "brows lowered and knitted",
        ),
        "neutral": (
            "level eyebrows",
            "brows at rest",
            "eyebrows at rest",
            "level, resting brows",
            "untroubled, level brows",
        ),
    },
    "eyes": {
        "wide": (
            "wide-open eyes",
            "wide eyes",
            "staring eyes",
            "eyes opened wide",
            "big, wide eyes",
        ),
        "narrowed": (
            "narrowed eyes",
            "squinting eyes",
            "half-closed eyes",
            "narrow eyes",
            "heavy-lidded eyes",
            "eyes narrowed to slits",
        ),
        "normal": (
            "ordinary eyes",
            "calm eyes",
            "normally open eyes",
            "calm, ordinary eyes",
            "steady eyes",
        ),
    },
}

_CLAUSES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "mouth": {
        "smile": (
            ("mouth", "curves up into a smile"),
            ("lips", "spread into a grin"),
            ("mouth", "turns up at the corners"),
            ("lips", "curl into a smile"),
        ),
        "frown": (
            ("mouth", "turns down into a frown"),
            ("lips", "turn down"),
            ("corners of the mouth", "droop"),
            ("mouth", "sinks into a frown"),
        ),
        "open": (
            ("mouth", "drops open"),
            ("jaw", "falls open in a gasp"),
            ("mouth", "opens into a round O"),
            ("lips", "part wide in a gasp"),
        ),
        "flat": (
            ("mouth", "stays closed and straight"),
            ("lips", "stay pressed together"),
            ("mouth", "remains a flat line"),
            ("lips", "stay closed and flat"),
        ),
    },
    "brows": {
        "raised": (
            ("eyebrows", "rise"),
            ("brows", "lift"),
            ("eyebrows", "arch upward"),
            ("brows", "shoot up"),
        ),
        "furrowed": (
            ("brows", "knit together"),
            ("eyebrows", "lower and draw together"),
            ("brows", "furrow"),
            ("eyebrows", "pull down into a furrow"),
        ),
        "neutral": (
            ("eyebrows", "stay level"),
            ("brows", "remain at rest"),
            ("eyebrows", "stay at rest"),
            ("brows", "stay level"),
        ),
    },
    "eyes": {
        "wide": (
            ("eyes", "widen"),
            ("eyes", "open wide"),
            ("eyes", "go wide"),
            ("eyes", "stare wide open"),
        ),
        "narrowed": (
            ("eyes", "narrow"),
            ("eyes", "squint"),
            ("eyes", "narrow to slits"),
            ("eyes", "half close"),
        ),
        "normal": (
            ("eyes", "stay calm"),
            ("eyes", "look ahead normally"),
            ("eyes", "remain ordinary"),
            ("eyes", "stay steady"),
        ),
    },
}

_NEUTRAL_VALUES = {"flat", "neutral", "normal"}
_ADVERBS = ("slowly", "gradually", "suddenly")
_NOUN_LEADS = (
    "A face with ",
    "A person with ",
    "Someone with ",
    "The face shows ",
    "A cartoon face with ",
    "An expression with ",
    "",
)


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _clause(cue: str, value: str, rng: np.random.Generator, *, article: bool = True) -> str:
    subject, predicate = _pick(rng, _CLAUSES[cue][value])
    if value not in _NEUTRAL_VALUES and rng.random() < 0.25:
        predicate = f"{_pick(rng, _ADVERBS)} {predicate}"
    return f"{'the ' if article else ''}{subject} {predicate}"


def caption(expr: Expression, rng: np.random.Generator) -> str:
    """A sample-level caption describing the cues of `expr`.

    Synonyms, a random cue order, one dropped cue a quarter of the time, and a style drawn among
    noun phrases ("A face with raised eyebrows and a wide smile."), clauses ("The eyes narrow
    and the mouth turns down into a frown.") and mixtures ("A face whose eyes widen while the
    brows lift, with an open mouth.").
    """
    cues = [(cue, getattr(expr, cue)) for cue in CUES]
    order = rng.permutation(len(cues))
    if rng.random() < 0.25:
        order = order[1:]
    cues = [cues[i] for i in order]
    nouns = [_pick(rng, _NOUNS[cue][value]) for cue, value in cues]
    style = int(rng.integers(5))
    if style == 0:  # noun phrases only
        text = _pick(rng, _NOUN_LEADS) + _join(nouns)
    elif style == 1:  # clauses only
        text = _join([_clause(cue, value, rng) for cue, value in cues])
    elif style == 2:  # "A face whose ... while ..."
        first = _clause(*cues[0], rng, article=False)
        rest = [_clause(cue, value, rng) for cue, value in cues[1:]]
        text = f"A face whose {first} while {_join(rest)}"
    elif style == 3:  # noun phrases, then a clause
        lead = _pick(rng, _NOUN_LEADS[:-1])
        link = _pick(rng, (", as ", " while ", "; "))
        text = lead + _join(nouns[:-1]) + link + _clause(*cues[-1], rng)
    else:  # clauses, then a noun phrase
        clauses = [_clause(cue, value, rng) for cue, value in cues[:-1]]
        text = _join(clauses) + _pick(rng, (", with ", ", showing ")) + nouns[-1]
    return text[0].upper() + text[1:] + "."


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

# Face geometry in face units: the face is an ellipse with half-axes (0.80, 0.97) around the
# origin, +y points down. Cue parameters at full intensity, scaled per clip by a jitter factor.
_FACE_AXES = (0.80, 0.97)
_EYE_X, _EYE_Y, _EYE_W, _IRIS_R = 0.33, -0.05, 0.17, 0.075
_BROW_Y, _BROW_X = (-0.36), (0.12, 0.32, 0.52)  # inner, middle, outer x
_MOUTH_Y = 0.50
_EYE_OPEN = {"normal": 0.085, "wide": 0.155, "narrowed": 0.028}  # eye half-height
_BROWS = {  # (vertical shift, extra drop of the inner end, arch height); +y is down
    "neutral": (0.0, 0.0, 0.02),
    "raised": (-0.10, -0.01, 0.07),
    "furrowed": (0.05, 0.085, -0.01),
}
_SUB = 4  # fixed-point bits for sub-pixel drawing
_XS = np.linspace(-1.0, 1.0, 13)
_ARC = np.sqrt(np.clip(1.0 - _XS**2, 0.0, None))


def _mouth_target(value: str, u: np.ndarray) -> np.ndarray:
    """(half-width, curvature, upper opening, lower opening) for a mouth value; u: 3 uniforms."""
    j = 0.85 + 0.3 * u[0]
    if value == "smile":  # corners up; sometimes an open grin
        return np.array([0.33, 0.13 * j, 0.0, 0.12 * u[1] ** 2])
    if value == "frown":
        return np.array([0.27, -0.11 * j, 0.0, 0.04 * u[1]])
    if value == "open":  # a round, tall O
        return np.array([0.17 + 0.04 * u[2], 0.0, 0.11 * j, 0.15 * j])
    return np.array([0.27 + 0.03 * u[2], 0.0, 0.0, 0.0])


def _cue_targets(expr: Expression, u: np.ndarray) -> np.ndarray:
    """Cue parameter vector (8,) at full intensity; u: 8 uniforms (always all consumed)."""
    mouth = _mouth_target(expr.mouth, u[:3])
    brow = np.array(_BROWS[expr.brows]) * (0.85 + 0.3 * u[3])
    eye = _EYE_OPEN[expr.eyes] * (0.9 + 0.2 * u[4])
    return np.concatenate([mouth, brow, [eye]])


_NEUTRAL = Expression("flat", "neutral", "normal")


def _intensity(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) expression intensity: near 0, smooth ease-in, then a hold with small jitter."""
    t = np.linspace(0.0, 1.0, num_frames)
    start, end = 0.1 * rng.random(), 0.3 + 0.2 * rng.random()
    x = np.clip((t - start) / (end - start), 0.0, 1.0)
    ease = x * x * (3.0 - 2.0 * x)
    base = 0.1 * rng.random()
    jitter = 0.05 * (rng.random(num_frames) - 0.5) * ease
    return base + (1.0 - base) * ease + jitter


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    hsv = np.array([[[h, s, v]]], dtype=np.uint8)
    r, g, b = (int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    return r, g, b


def _colours(rng: np.random.Generator) -> dict[str, tuple[int, int, int]]:
    """Per-clip colours (RGB). Skin is usually a skin tone, sometimes any cartoon colour."""
    r = rng.random(14)
    if r[0] < 0.7:
        skin = (5 + 20 * r[1], 40 + 130 * r[2], 120 + 135 * r[3])
    else:
        skin = (180 * r[1], 40 + 120 * r[2], 140 + 115 * r[3])
    bg_v = 20 + 235 * r[5]
    if abs(bg_v - skin[2]) < 60:  # keep the face outline visible against the background
        bg_v = (bg_v + 120) % 256
    return {
        "skin": _hsv_to_rgb(*skin),
        "bg": _hsv_to_rgb(180 * r[4], 200 * r[6], bg_v),
        "line": _hsv_to_rgb(180 * r[7], 255 * r[8], 60 * r[9]),
        "sclera": _hsv_to_rgb(180 * r[10], 25 * r[10], 235 + 20 * r[11]),
        "iris": _hsv_to_rgb(180 * r[12], 80 + 175 * r[13], 40 + 100 * r[11]),
        "inside": _hsv_to_rgb(175 * r[13], 150 + 80 * r[12], 50 + 60 * r[10]),
    }


def _motion(num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 4) per-frame centre x, centre y (pixels), scale (pixels per face unit), angle (deg)."""
    r = rng.random(12)
    t = np.linspace(0.0, 1.0, num_frames)
    wobble = np.sin(2 * np.pi * (0.3 + 0.9 * r[0]) * t + 2 * np.pi * r[1])
    cx = size * (0.5 + 0.1 * (r[2] - 0.5) + 0.08 * (r[3] - 0.5) * t + 0.012 * wobble)
    cy = size * (0.5 + 0.1 * (r[4] - 0.5) + 0.08 * (r[5] - 0.5) * t + 0.01 * r[6] * wobble)
    scale = size / 2 * (0.9 + 0.14 * r[7]) * (1.0 + 0.06 * (r[8] - 0.5) * t)
    angle = 16 * (r[9] - 0.5) + 10 * (r[10] - 0.5) * t + 2.5 * r[11] * wobble
    return np.stack([cx, cy, scale, angle], axis=1)


class _Pose:
    """Similarity transform from face units to fixed-point pixels (``shift=_SUB``) for one frame."""

    __slots__ = ("angle", "scale", "lin", "off")

    def __init__(self, cx: float, cy: float, scale: float, angle: float) -> None:
        one = 1 << _SUB
        c = math.cos(math.radians(angle)) * scale * one
        s = math.sin(math.radians(angle)) * scale * one
        self.angle, self.scale = float(angle), float(scale)
        self.lin = np.array([[c, s], [-s, c]])  # row vectors: p @ lin
        self.off = np.array([cx * one, cy * one])

    def points(self, pts: np.ndarray) -> np.ndarray:
        """Face-unit points (N, 2) -> int32 fixed-point pixel coordinates (N, 2)."""
        return np.rint(pts @ self.lin + self.off).astype(np.int32)

    def ellipse(self, img, centre, axes, colour, thickness: int) -> None:
        (c, s), (ox, oy) = self.lin[0], self.off
        x, y = centre
        k = self.scale * (1 << _SUB)
        cv2.ellipse(
            img,
            (round(x * c - y * s + ox), round(x * s + y * c + oy)),
            (round(axes[0] * k), round(axes[1] * k)),
            self.angle,
            0,
            360,
            colour,
            thickness,
            cv2.LINE_AA,
            _SUB,
        )


def _draw_eyes(img, pose, eye_h, gaze, look) -> None:
    for side in (-1.0, 1.0):
        centre = (side * _EYE_X, _EYE_Y)
        pose.ellipse(img, centre, (_EYE_W, eye_h), look["sclera"], -1)
        iris_c = (centre[0] + gaze, centre[1])
        pose.ellipse(img, iris_c, (_IRIS_R, min(_IRIS_R, eye_h)), look["iris"], -1)
        pupil = 0.45 * _IRIS_R
        pose.ellipse(img, iris_c, (pupil, min(pupil, eye_h)), look["line"], -1)
        pose.ellipse(img, centre, (_EYE_W, eye_h), look["line"], look["thin"])


def _draw_brows(img, pose, shift, inner, arch, look) -> None:
    lines = []
    for side in (-1.0, 1.0):
        x0, x1, x2 = (side * x for x in _BROW_X)
        y0, y2 = _BROW_Y + shift + inner, _BROW_Y + shift
        y1 = 0.5 * (y0 + y2) - arch
        lines.append(pose.points(np.array([[x0, y0], [x1, y1], [x2, y2]])))
    cv2.polylines(img, lines, False, look["line"], look["bold"], cv2.LINE_AA, _SUB)


def _draw_mouth(img, pose, params, look) -> None:
    width, curve, up, down = params
    mid = _MOUTH_Y + curve * (1.0 - _XS**2) - 0.5 * curve  # smile: corners above the middle
    upper = np.stack([width * _XS, mid - up * _ARC], axis=1)
    if (up + down) * pose.scale < 0.8:  # closed: one line
        cv2.polylines(
            img, [pose.points(upper)], False, look["line"], look["thick"], cv2.LINE_AA, _SUB
        )
        return
    lower = np.stack([width * _XS, mid + down * _ARC], axis=1)
    poly = pose.points(np.concatenate([upper, lower[::-1]]))
    cv2.fillPoly(img, [poly], look["inside"], cv2.LINE_AA, _SUB)
    cv2.polylines(img, [poly], True, look["line"], look["thick"], cv2.LINE_AA, _SUB)


_NOSE = np.array([[0.02, 0.05], [-0.05, 0.25], [0.04, 0.27]])


def _draw_frame(img, pose, params, look) -> None:
    img[:] = look["bg"]
    pose.ellipse(img, (0.0, 0.0), _FACE_AXES, look["skin"], -1)
    pose.ellipse(img, (0.0, 0.0), _FACE_AXES, look["line"], look["thick"])
    _draw_eyes(img, pose, params[7], look["gaze"], look)
    _draw_brows(img, pose, params[4], params[5], params[6], look)
    cv2.polylines(img, [pose.points(_NOSE)], False, look["line"], look["thick"], cv2.LINE_AA, _SUB)
    _draw_mouth(img, pose, params[:4], look)


def render_clip(
    expr: Expression, rng: np.random.Generator, *, num_frames: int = 16, size: int = 64
) -> np.ndarray:
    """Draw one clip of a face whose expression unfolds from neutral to `expr`.

    The generator is consumed identically whatever `expr` is, so two calls with equally seeded
    generators differ only in the cues.

    Args:
        expr: The target expression.
        rng: Source of every nuisance factor (colours, pose, motion, timing, noise).
        num_frames: Number of frames T.
        size: Frame side S in pixels; the face is drawn at this size.

    Returns:
        Frames, uint8 array (T, S, S, 3), RGB, values in [0, 255].
    """
    gain, bias = 0.75 + 0.45 * rng.random(), 30 * (rng.random() - 0.5)
    # Brightness/contrast acts on the palette: same image as on the pixels, as drawing is linear.
    look: dict = {
        k: tuple(min(255, max(0, round(v * gain + bias))) for v in rgb)
        for k, rgb in _colours(rng).items()
    }
    width = size * 0.022 * (0.7 + 0.7 * rng.random())  # line width in pixels
    look["thick"] = max(1, round(width))
    look["thin"] = max(1, round(0.6 * width))  # eye outlines: keep the whites visible
    look["bold"] = max(2, round(1.6 * width))  # brows
    look["gaze"] = 0.05 * (rng.random() - 0.5)
    poses = _motion(num_frames, size, rng)
    u = rng.random(8)
    start, target = _cue_targets(_NEUTRAL, u), _cue_targets(expr, u)
    amount = _intensity(num_frames, rng)
    params = start + amount[:, None] * (target - start)  # (T, 8)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for img, pose, p in zip(frames, poses, params):
        _draw_frame(img, _Pose(*pose), p, look)
    return _add_noise(frames, 10 * rng.random(), int(rng.integers(2**31)))


def _add_noise(frames: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Add Gaussian pixel noise (saturating) in place. cv2.randn is ~4x faster than numpy's
    normal; its generator is per thread, seeded here from the clip's numpy generator."""
    flat = frames.reshape(-1, frames.shape[2] * 3)  # 2-D view for OpenCV
    noise = np.empty(flat.shape, dtype=np.float32)
    cv2.setRNGSeed(seed)
    cv2.randn(noise, 0.0, sigma)  # type: ignore[call-overload]  # scalars work; stubs list arrays
    cv2.add(flat, noise, dst=flat, dtype=cv2.CV_8U)
    return frames


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
