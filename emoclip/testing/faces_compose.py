"""Compose a real face into a scene for the evaluation set: `face_patch` (scale, turn, tilt,
relight, occlude) and `paste` (feathered alpha blend). cv2 + numpy.

Images are ``(H, W, 3)`` uint8 RGB; alphas ``(H, W)`` float32 in [0, 1]; boxes ``(x, y, w, h)``.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["CONTEXT", "face_patch", "paste"]

CONTEXT = 2.0  # the pasted patch is this many face sides wide: head, hair, neck and some scene
_SKIN = ((224, 172, 140), (198, 134, 100), (141, 85, 60), (240, 200, 170))


def face_patch(
    source: np.ndarray,
    box: tuple[float, float, float, float],
    size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float], str]:
    """A face of `source` (its box `box`) made `size` px (longer box side), transformed at random.

    Returns:
        ``(patch, alpha, face_box, note)``: the ``(h, w, 3)`` uint8 patch, its ``(h, w)`` alpha,
        the face's box in patch pixels and a note naming the transforms.
    """
    bx, by, bw, bh = box
    notes = []
    sx = float(rng.uniform(0.72, 0.95)) if rng.random() < 0.3 else 1.0  # a three-quarter turn
    sy = float(rng.uniform(0.8, 0.95)) if rng.random() < 0.2 else 1.0  # looking down
    if sx < 1:
        notes.append(f"turned x{sx:.2f}")
    if sy < 1:
        notes.append(f"down x{sy:.2f}")
    k = size / max(bw * sx, bh * sy)
    side = CONTEXT * max(bw, bh)
    cx, cy = bx + bw / 2, by + bh / 2
    # The context square, scaled (area-averaged when shrinking) then squeezed about the face.
    out_w, out_h = max(8, round(side * k * sx)), max(8, round(side * k * sy))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(source, None, fx=k, fy=k, interpolation=interp)
    m = np.array([[sx, 0, out_w / 2 - sx * cx * k], [0, sy, out_h / 2 - sy * cy * k]], np.float64)
    patch = cv2.warpAffine(
        scaled, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    if rng.random() < 0.5:
        patch = np.ascontiguousarray(patch[:, ::-1])
        notes.append("flipped")
    angle = float(rng.uniform(-25, 25) if rng.random() < 0.4 else rng.uniform(-6, 6))
    rot = cv2.getRotationMatrix2D((out_w / 2, out_h / 2), angle, 1.0)
    patch = cv2.warpAffine(patch, rot, (out_w, out_h), borderMode=cv2.BORDER_REFLECT)
    notes.append(f"rot {angle:+.0f}")
    fw, fh = bw * k * sx, bh * k * sy
    face = (out_w / 2 - fw / 2, out_h / 2 - fh / 2, fw, fh)
    patch, light = _relight(patch, rng)
    notes.append(light)
    if rng.random() < 0.35:
        notes.append(_occlude(patch, face, angle, rng))
    return patch, _feather(out_w, out_h), face, ", ".join(notes)


def _relight(patch: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    x = patch.astype(np.float32) / 255.0
    gamma = float(np.exp(rng.uniform(np.log(0.55), np.log(1.8))))
    cast = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    x = np.power(x, gamma) * cast
    gain = float(rng.uniform(0.45, 0.7)) if rng.random() < 0.15 else 1.0
    x = x * gain
    note = f"gamma {gamma:.2f} cast {cast.round(2).tolist()} gain {gain:.2f}"
    out = x * 255.0
    if rng.random() < 0.3:
        out = out + rng.normal(0, 6, size=out.shape).astype(np.float32)
        note += " noise"
    if rng.random() < 0.25:
        sigma = max(0.6, patch.shape[0] / 150)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
        note += f" blur {sigma:.1f}"
    return np.clip(out, 0, 255).astype(np.uint8), note


def _occlude(
    patch: np.ndarray,
    face: tuple[float, float, float, float],
    angle: float,
    rng: np.random.Generator,
) -> str:
    """Draw one partial occluder over the face (in place): sunglasses, a mask, a hand or a bar."""
    x, y, w, h = face
    layer = np.zeros(patch.shape[:2], np.uint8)
    kind = ("sunglasses", "mask", "hand", "bar")[int(rng.integers(4))]
    colour: tuple[int, int, int]
    if kind == "sunglasses":
        colour = (20, 20, 25)
        ey, r = y + 0.33 * h, max(2, round(0.13 * w))
        for ex in (x + 0.3 * w, x + 0.7 * w):
            cv2.ellipse(layer, (round(ex), round(ey)), (r + 1, r), 0, 0, 360, 255, -1)
        cv2.line(layer, (round(x + 0.3 * w), round(ey)), (round(x + 0.7 * w), round(ey)), 255, 2)
    elif kind == "mask":
        colour = ((170, 200, 230), (235, 235, 235), (40, 40, 50))[int(rng.integers(3))]
        pts = np.array(
            [[x + 0.12 * w, y + 0.58 * h], [x + 0.88 * w, y + 0.58 * h], [x + 0.8 * w, y + 1.0 * h]]
            + [[x + 0.5 * w, y + 1.08 * h], [x + 0.2 * w, y + 1.0 * h]],
            np.int32,
        )
        cv2.fillPoly(layer, [pts], 255)
    elif kind == "hand":
        colour = _SKIN[int(rng.integers(len(_SKIN)))]
        side = 1 if rng.random() < 0.5 else -1
        centre = (round(x + w / 2 + side * 0.42 * w), round(y + 0.8 * h))
        cv2.ellipse(layer, centre, (round(0.2 * w), round(0.3 * h)), 20 * side, 0, 360, 255, -1)
    else:
        colour = (60, 45, 30)
        bx = x + float(rng.uniform(0.1, 0.7)) * w
        cv2.rectangle(layer, (round(bx), 0), (round(bx + 0.18 * w), patch.shape[0]), 255, -1)
    a = cv2.GaussianBlur(layer, (0, 0), max(0.5, w / 60)).astype(np.float32)[..., None] / 255
    patch[:] = (patch * (1 - a) + np.array(colour, np.float32) * a).astype(np.uint8)
    return kind


def _feather(w: int, h: int) -> np.ndarray:
    """An elliptical alpha, 1 inside, fading out over ~12 % of the patch."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - w / 2) / (0.5 * w)) ** 2 + ((yy - h / 2) / (0.5 * h)) ** 2)
    return np.clip((1.0 - r) / 0.15, 0.0, 1.0).astype(np.float32)


def paste(canvas: np.ndarray, patch: np.ndarray, alpha: np.ndarray, at: tuple[int, int]) -> None:
    """Blend `patch` into `canvas` (in place) with `alpha`, its top-left corner at `at`."""
    x, y = at
    h, w = patch.shape[:2]
    region = canvas[y : y + h, x : x + w].astype(np.float32)
    a = alpha[..., None]
    canvas[y : y + h, x : x + w] = np.clip(region * (1 - a) + patch * a, 0, 255).astype(np.uint8)
