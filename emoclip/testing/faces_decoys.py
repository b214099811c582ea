"""Hard non-faces for the face evaluation set (`draw_decoy`) and its scene photographs
(`scene_photo`); sources and licences are listed in `emoclip.testing.faces_eval`.

A decoy is a ``(h, w, 3)`` uint8 RGB patch with an ``(h, w)`` float32 alpha in [0, 1]; `size` is
its longer side in pixels. Kinds (`DECOY_KINDS`): framed pictures and posters of non-face photos,
lamps and shades, round shiny metal, clocks (real and drawn), pets (the chelsea cat), cartoon and
line-drawn faces, text, and skin-coloured blobs.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["DECOY_KINDS", "draw_decoy", "scene_photo"]

DECOY_KINDS = ("frame", "lamp", "metal", "clock", "pet", "cartoon", "text", "skin")
_PICTURES = ("coffee", "rocket", "china", "flower", "hubble", "chelsea", "ihc")
_SKIN = ((224, 172, 140), (198, 134, 100), (141, 85, 60), (240, 200, 170), (255, 219, 172))


@lru_cache(maxsize=16)
def scene_photo(name: str) -> np.ndarray:
    """A real photograph without a human face, ``(H, W, 3)`` uint8 RGB (see the module)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.ascontiguousarray(load_sample_image(f"{name}.jpg"))
    from skimage import data

    loaders = {
        "coffee": data.coffee,
        "rocket": data.rocket,
        "hubble": data.hubble_deep_field,
        "ihc": data.immunohistochemistry,
        "brick": data.brick,
        "grass": data.grass,
        "gravel": data.gravel,
        "chelsea": data.chelsea,
        "clock": data.clock,
        "text": data.text,
        "page": data.page,
    }
    image = np.asarray(loaders[name]())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def draw_decoy(kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A hard non-face of `kind` whose longer side is about `size` px: ``(patch, alpha)``."""
    draw = {
        "frame": _frame,
        "lamp": _lamp,
        "metal": _metal,
        "clock": _clock,
        "pet": _pet,
        "cartoon": _cartoon,
        "text": _text,
        "skin": _skin,
    }[kind]
    patch, alpha = draw(max(24, size), rng)
    return np.clip(patch, 0, 255).astype(np.uint8), alpha.astype(np.float32)


def _crop_of(name: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    photo = scene_photo(name)
    ph, pw = photo.shape[:2]
    cw = int(rng.integers(max(8, pw // 3), pw + 1))
    ch = min(ph, max(8, round(cw * h / w)))
    x, y = int(rng.integers(pw - cw + 1)), int(rng.integers(ph - ch + 1))
    return cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)


def _frame(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A framed picture or poster of a non-face photo (a portrait-shaped one half the time)."""
    portrait = rng.random() < 0.5
    w, h = (round(size * 0.75), size) if portrait else (size, round(size * 0.75))
    border = max(2, round(size * float(rng.uniform(0.04, 0.12))))
    colour = ((120, 80, 40), (200, 170, 90), (30, 30, 30), (240, 240, 235))[int(rng.integers(4))]
    patch = np.empty((h, w, 3), np.float32)
    patch[:] = colour
    inner = _crop_of(
        _PICTURES[int(rng.integers(len(_PICTURES)))], w - 2 * border, h - 2 * border, rng
    )
    patch[border : h - border, border : w - border] = inner
    if rng.random() < 0.4:  # a poster: a title under the picture
        cv2.putText(
            patch, "EXHIBIT", (border, h - border // 3), cv2.FONT_HERSHEY_SIMPLEX,
            max(0.3, border / 25), (250, 250, 250), 1, cv2.LINE_AA,
        )  # fmt: skip
    return patch, np.ones((h, w), np.float32)


def _lamp(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A lamp shade (a lit trapezoid with a glow) on a stem."""
    w, h = round(size * 0.7), size
    patch = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    top, bottom = round(w * 0.25), round(w * 0.05)
    shade_h = round(h * 0.45)
    pts = np.array([[top, 0], [w - top, 0], [w - bottom, shade_h], [bottom, shade_h]], np.int32)
    tone = np.array(((250, 235, 200), (240, 220, 180), (255, 250, 240))[int(rng.integers(3))])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 255)
    grad = np.linspace(0.75, 1.05, shade_h)[:, None, None]
    patch[:shade_h] = tone * grad
    alpha[mask > 0] = 1.0
    cv2.line(patch, (w // 2, shade_h), (w // 2, h - 4), (60, 50, 40), max(1, w // 30))
    cv2.line(alpha, (w // 2, shade_h), (w // 2, h - 4), 1.0, max(1, w // 30))
    cv2.ellipse(patch, (w // 2, h - 4), (w // 4, 4), 0, 0, 360, (60, 50, 40), -1)
    cv2.ellipse(alpha, (w // 2, h - 4), (w // 4, 4), 0, 0, 360, 1.0, -1)
    glow = np.zeros((h, w), np.float32)
    cv2.circle(glow, (w // 2, shade_h + 2), max(2, w // 5), 1.0, -1)
    glow = np.asarray(cv2.GaussianBlur(glow, (0, 0), max(1.0, w / 10)), np.float32)
    patch = patch + 255 * glow[..., None] * 0.8
    return patch, np.maximum(alpha, np.clip(glow * 2, 0, 1))


def _metal(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Round shiny metal: a ball or an ice bucket seen from the side, with highlights."""
    w = size
    h = size if rng.random() < 0.5 else round(size * 0.8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
    base = np.array(((190, 190, 195), (205, 170, 110), (170, 175, 185))[int(rng.integers(3))])
    shade = 0.35 + 0.75 * np.clip(1 - r, 0, 1) ** 0.5
    hx, hy = float(rng.uniform(0.3, 0.45)) * w, float(rng.uniform(0.25, 0.4)) * h
    spec = np.exp(-(((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * (0.08 * w) ** 2)))
    spec2 = np.exp(-(((xx - (w - hx)) ** 2 + (yy - hy) ** 2) / (2 * (0.06 * w) ** 2)))
    patch = base * np.clip(shade, 0, 1.2)[..., None] + 255 * (spec + 0.6 * spec2)[..., None]
    alpha = np.clip((1.0 - r) / 0.05, 0, 1)
    return patch, alpha


def _clock(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A wall clock: the real (motion-blurred) photo, or a drawn face with ticks and hands."""
    if rng.random() < 0.4:
        photo = scene_photo("clock")
        patch = cv2.resize(photo, (size, round(size * 0.75)), interpolation=cv2.INTER_AREA)
        return patch.astype(np.float32), np.ones(patch.shape[:2], np.float32)
    patch = np.zeros((size, size, 3), np.float32)
    c, r = size // 2, size // 2 - 1
    cv2.circle(patch, (c, c), r, (40, 40, 40), -1)
    cv2.circle(patch, (c, c), round(r * 0.92), (245, 240, 225), -1)
    for i in range(12):
        a = i * np.pi / 6
        p0 = (round(c + 0.78 * r * np.cos(a)), round(c + 0.78 * r * np.sin(a)))
        p1 = (round(c + 0.88 * r * np.cos(a)), round(c + 0.88 * r * np.sin(a)))
        cv2.line(patch, p0, p1, (20, 20, 20), max(1, size // 60))
    for length, width in ((0.5, size // 30), (0.75, size // 50)):
        a = float(rng.uniform(0, 2 * np.pi))
        tip = (round(c + length * r * np.cos(a)), round(c + length * r * np.sin(a)))
        cv2.line(patch, (c, c), tip, (10, 10, 10), max(1, width))
    alpha = np.zeros((size, size), np.float32)
    cv2.circle(alpha, (c, c), r, 1.0, -1)
    return patch, alpha


def _pet(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The chelsea cat: its head (about (130, 20)-(330, 230) in the photo) or the whole photo."""
    photo = scene_photo("chelsea")
    region = photo[10:240, 110:350] if rng.random() < 0.6 else photo
    if rng.random() < 0.5:
        region = region[:, ::-1]
    h = round(size * region.shape[0] / region.shape[1])
    patch = cv2.resize(
        np.ascontiguousarray(region), (size, max(8, h)), interpolation=cv2.INTER_AREA
    )
    yy, xx = np.mgrid[0 : patch.shape[0], 0:size].astype(np.float32)
    r = np.sqrt(
        ((xx - size / 2) / (size / 2)) ** 2
        + ((yy - patch.shape[0] / 2) / (patch.shape[0] / 2)) ** 2
    )
    return patch.astype(np.float32), np.clip((1.0 - r) / 0.2, 0, 1)


def _cartoon(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A cartoon face (filled disc, eyes, mouth) or a line drawing of a face on paper."""
    patch = np.zeros((size, size, 3), np.float32)
    c, r = size // 2, size // 2 - 2
    drawn = rng.random() < 0.5
    ink = (30, 30, 30)
    thick = max(1, size // 40)
    if drawn:
        patch[:] = (245, 242, 235)
        cv2.ellipse(patch, (c, c), (round(r * 0.75), r), 0, 0, 360, ink, thick)
        cv2.line(
            patch, (c, round(c - 0.05 * r)), (round(c - 0.08 * r), round(c + 0.25 * r)), ink, thick
        )
        alpha = np.ones((size, size), np.float32)
    else:
        fill = ((255, 220, 0), _SKIN[int(rng.integers(len(_SKIN)))])[int(rng.integers(2))]
        cv2.circle(patch, (c, c), r, fill, -1)
        cv2.circle(patch, (c, c), r, ink, thick)
        alpha = np.zeros((size, size), np.float32)
        cv2.circle(alpha, (c, c), r, 1.0, -1)
    for ex in (c - 0.35 * r, c + 0.35 * r):
        cv2.ellipse(
            patch,
            (round(ex), round(c - 0.25 * r)),
            (max(1, round(0.1 * r)), max(1, round(0.14 * r))),
            0,
            0,
            360,
            ink,
            -1,
        )
    cv2.ellipse(
        patch,
        (c, round(c + 0.3 * r)),
        (round(0.4 * r), round(0.25 * r)),
        0,
        20,
        160,
        ink,
        thick + 1,
    )
    return patch, alpha


def _text(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Text: a crop of the scanned page / corner-test photo, or printed words on a sign."""
    if rng.random() < 0.5:
        photo = scene_photo(("text", "page")[int(rng.integers(2))])
        h = round(size * photo.shape[0] / photo.shape[1])
        patch = cv2.resize(photo, (size, max(8, h)), interpolation=cv2.INTER_AREA)
        return patch.astype(np.float32), np.ones(patch.shape[:2], np.float32)
    h = max(16, round(size * 0.5))
    patch = np.empty((h, size, 3), np.float32)
    patch[:] = ((250, 250, 245), (20, 60, 140), (200, 30, 30))[int(rng.integers(3))]
    colour = (255, 255, 255) if patch[0, 0, 0] < 240 else (20, 20, 20)
    words = ("OPEN", "EXIT", "CAFE", "SALE 50%", "HOTEL", "NO 8")
    scale = size / 160
    for row in range(2):
        word = words[int(rng.integers(len(words)))]
        y = round(h * (0.42 + 0.4 * row))
        cv2.putText(
            patch,
            word,
            (4, y),
            cv2.FONT_HERSHEY_DUPLEX,
            scale,
            colour,
            max(1, size // 80),
            cv2.LINE_AA,
        )
    return patch, np.ones((h, size), np.float32)


def _skin(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured blob: an oval with soft shading and a few darker spots."""
    w, h = size, round(size * float(rng.uniform(0.7, 1.3)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
    tone = np.array(_SKIN[int(rng.integers(len(_SKIN)))], np.float32)
    light = 0.7 + 0.35 * (1 - r) + 0.1 * (xx / w)
    patch = tone * np.clip(light, 0.5, 1.2)[..., None]
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = float(rng.uniform(0.25, 0.75)) * w, float(rng.uniform(0.25, 0.75)) * h
        spot = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.06 * w) ** 2)))
        patch = patch * (1 - 0.35 * spot[..., None])
    return patch, np.clip((1.0 - r) / 0.1, 0, 1)
