"""The face-detection evaluation set: real faces composed into real scenes, beside hard non-faces.

Deterministic and generated offline (no file is downloaded or committed): every image is built
from its own seed, so `eval_set` gives the same pixels and boxes on every machine.

Sources (all redistributable, shipped inside installed packages):
    faces: ``skimage.data.astronaut()`` (Eileen Collins, NASA, no known copyright restrictions),
        ``skimage.data.camera()`` (a man behind a camera, in profile-ish; CC0, Lav Varshney),
        matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy photograph, public domain).
    scenes (backgrounds) and real non-faces: scikit-image's ``coffee`` (CC0), ``rocket``
        (SpaceX, public domain), ``hubble_deep_field`` (NASA, public domain), ``immunohistochemistry``
        (no known restrictions), ``brick``/``grass``/``gravel`` (CC0), ``chelsea`` (a cat; CC0),
        ``clock`` (public domain), ``text``/``page`` (public domain / scikit-image);
        scikit-learn's ``china.jpg`` and ``flower.jpg`` (CC BY 2.0, danielbuechele / vultilion).
    drawn non-faces (this module): picture frames and posters around non-face photos, lamp
        shades, round shiny metal, clocks, cartoon and line-drawn faces, text, skin-coloured blobs.

Boxes are recorded from the composition: each source face's box was checked by eye on the
source photo (`FACE_SOURCES`) and is carried through the scale, squeeze and offset that paste it.
A face's size is the longer side of its box. Images are ``(H, W, 3)`` uint8 RGB.

The set is split once, by `SPLIT_SEED`, into a calibration part (60 %), where every threshold is
chosen, and a test part (40 %) that no choice looks at; `tests/test_faces_eval.py` asserts on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from emoclip.testing.faces_decoys import DECOY_KINDS, draw_decoy, scene_photo

__all__ = [
    "FACE_SOURCES",
    "SPLIT_SEED",
    "EvalImage",
    "eval_set",
    "size_band",
]

SPLIT_SEED = 20261207  # the one split of the set (never re-drawn)
FACE_IMAGES = 200  # composed group photos
NONFACE_PER_KIND = 24  # images of hard non-faces per kind
CALIBRATION_SHARE = 0.6
CANVASES = ((1024, 768), (768, 1024), (960, 640))
BANDS = ("<48", "48-96", ">96")
# Face boxes (x, y, w, h) in the source photos, checked by eye (rendered with the box drawn).
FACE_SOURCES: dict[str, tuple[float, float, float, float]] = {
    "astronaut": (177.0, 82.0, 95.0, 95.0),
    "camera": (182.0, 124.0, 87.0, 87.0),
    "grace_hopper": (171.0, 146.0, 194.0, 194.0),
}
_SCENES = ("coffee", "rocket", "hubble", "ihc", "brick", "grass", "gravel", "china", "flower")
_SIZE_RANGES = ((32, 48), (48, 96), (96, 200), (200, 400))


@dataclass(frozen=True)
class EvalImage:
    """One image of the set.

    Attributes:
        name: Unique name (``faces-017``, ``clock-004``).
        kind: ``"faces"`` for a composed group photo, else the non-face kind it shows.
        split: ``"calibration"`` or ``"test"``.
        image: ``(H, W, 3)`` uint8 RGB.
        faces: Face boxes ``(x, y, w, h)`` in pixels.
        decoys: Non-face objects ``(x, y, w, h, kind)`` in pixels.
        notes: How each face was made (source, transforms), for reading a miss.
    """

    name: str
    kind: str
    split: str
    image: np.ndarray
    faces: tuple[tuple[float, float, float, float], ...]
    decoys: tuple[tuple[float, float, float, float, str], ...]
    notes: tuple[str, ...] = ()


def size_band(size: float) -> str:
    """The face-size band of a box whose longer side is `size` pixels."""
    return "<48" if size < 48 else ("48-96" if size <= 96 else ">96")


def _names() -> list[tuple[str, str]]:
    out = [(f"faces-{i:03d}", "faces") for i in range(FACE_IMAGES)]
    out += [(f"{k}-{i:03d}", k) for k in DECOY_KINDS for i in range(NONFACE_PER_KIND)]
    return out


@lru_cache(maxsize=1)
def _splits() -> dict[str, str]:
    """Name -> part; drawn once per kind from `SPLIT_SEED` (stratified, 60/40)."""
    rng = np.random.default_rng(SPLIT_SEED)
    by_kind: dict[str, list[str]] = {}
    for name, kind in _names():
        by_kind.setdefault(kind, []).append(name)
    out: dict[str, str] = {}
    for kind in sorted(by_kind):
        names = by_kind[kind]
        order = rng.permutation(len(names))
        cut = round(CALIBRATION_SHARE * len(names))
        for rank, i in enumerate(order):
            out[names[i]] = "calibration" if rank < cut else "test"
    return out


def eval_set(split: str | None = None, kinds: tuple[str, ...] | None = None) -> Iterator[EvalImage]:
    """The images of the set, in a fixed order, built lazily (a few MB each).

    Args:
        split: ``"calibration"``, ``"test"`` or None for both.
        kinds: Only images of these kinds (``"faces"`` and/or `DECOY_KINDS`); None for all.
    """
    if split not in (None, "calibration", "test"):
        raise ValueError(f"split must be 'calibration', 'test' or None, got {split!r}")
    parts = _splits()
    for index, (name, kind) in enumerate(_names()):
        if (split is not None and parts[name] != split) or (kinds and kind not in kinds):
            continue
        rng = np.random.default_rng([SPLIT_SEED, index])
        if kind == "faces":
            yield _group_photo(name, parts[name], rng)
        else:
            yield _nonface_photo(name, kind, parts[name], rng)


def _canvas(rng: np.random.Generator) -> np.ndarray:
    width, height = CANVASES[int(rng.integers(len(CANVASES)))]
    scene = scene_photo(_SCENES[int(rng.integers(len(_SCENES)))])
    scale = max(width / scene.shape[1], height / scene.shape[0]) * float(rng.uniform(1.0, 1.4))
    big = cv2.resize(scene, (round(scene.shape[1] * scale) + 1, round(scene.shape[0] * scale) + 1))
    x0 = int(rng.integers(big.shape[1] - width + 1))
    y0 = int(rng.integers(big.shape[0] - height + 1))
    out = big[y0 : y0 + height, x0 : x0 + width].astype(np.float32)
    if rng.random() < 0.5:  # dim or brighten the room
        out = out * float(rng.uniform(0.6, 1.1))
    return np.clip(out, 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def face_source(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    if name == "camera":
        from skimage import data

        return np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1))
    from pathlib import Path

    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _free(spot: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    x, y, w, h = spot
    return all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in taken)


def _place(
    rng: np.random.Generator, canvas: np.ndarray, w: int, h: int, taken: list
) -> tuple[int, int] | None:
    height, width = canvas.shape[:2]
    if w >= width or h >= height:
        return None
    for _ in range(60):
        x, y = int(rng.integers(width - w)), int(rng.integers(height - h))
        if _free((x, y, w, h), taken):
            taken.append((x, y, w, h))
            return x, y
    return None


def _group_photo(name: str, split: str, rng: np.random.Generator) -> EvalImage:
    from emoclip.testing.faces_compose import face_patch, paste

    canvas = _canvas(rng)
    taken: list[tuple[int, int, int, int]] = []
    faces, notes, decoys = [], [], []
    count = int(rng.integers(2, 6))
    ranges = [_SIZE_RANGES[int(rng.integers(len(_SIZE_RANGES)))] for _ in range(count)]
    for lo, hi in sorted(ranges, key=lambda r: -r[0]):  # big faces first: they need the room
        size = int(rng.integers(lo, hi))
        source = list(FACE_SOURCES)[int(rng.integers(len(FACE_SOURCES)))]
        patch, alpha, box, note = face_patch(face_source(source), FACE_SOURCES[source], size, rng)
        spot = _place(rng, canvas, patch.shape[1], patch.shape[0], taken)
        if spot is None:
            continue
        paste(canvas, patch, alpha, spot)
        faces.append((box[0] + spot[0], box[1] + spot[1], box[2], box[3]))
        notes.append(f"{source} {note}")
    for _ in range(int(rng.integers(0, 3))):  # a few hard non-faces in the room too
        kind = DECOY_KINDS[int(rng.integers(len(DECOY_KINDS)))]
        decoy = _add_decoy(canvas, kind, rng, taken)
        if decoy is not None:
            decoys.append(decoy)
    return EvalImage(name, "faces", split, canvas, tuple(faces), tuple(decoys), tuple(notes))


def _add_decoy(
    canvas: np.ndarray, kind: str, rng: np.random.Generator, taken: list
) -> tuple[float, float, float, float, str] | None:
    from emoclip.testing.faces_compose import paste

    size = int(rng.integers(40, 360))
    patch, alpha = draw_decoy(kind, size, rng)
    spot = _place(rng, canvas, patch.shape[1], patch.shape[0], taken)
    if spot is None:
        return None
    paste(canvas, patch, alpha, spot)
    return (float(spot[0]), float(spot[1]), float(patch.shape[1]), float(patch.shape[0]), kind)


def _nonface_photo(name: str, kind: str, split: str, rng: np.random.Generator) -> EvalImage:
    canvas = _canvas(rng)
    taken: list[tuple[int, int, int, int]] = []
    decoys = []
    for _ in range(int(rng.integers(2, 5))):
        decoy = _add_decoy(canvas, kind, rng, taken)
        if decoy is not None:
            decoys.append(decoy)
    return EvalImage(name, kind, split, canvas, (), tuple(decoys))
