"""The procedural cartoon-face renderer of the synthetic dataset: `render_clip` draws a face whose
expression unfolds from neutral to a target `Expression`, with per-clip nuisance factors (colours,
pose, head motion, line width, brightness, pixel noise), using OpenCV primitives at the requested
size (see `synthetic`)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from emoclip.train.synthetic_cues import Expression

__all__ = ["render_clip"]

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
