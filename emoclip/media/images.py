"""Still images and folders of numbered frames; Pillow + numpy only, no torch.

Every image that leaves this module is an upright ``(H, W, 3)`` uint8 RGB array in [0, 255]:
EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), an alpha channel is composited on
white, and grey, palette, CMYK and 16-bit images are converted. The pixel count is checked from
the header, before any pixel is decoded, so a 30,000-pixel-wide image costs nothing.

A *frame folder* is how DFEW, MAFW, FERV39k and AFEW ship their clips: a folder whose files are all
images named with one common numbered pattern (``00001.jpg``, ``frame_002.png``, ...).
`frame_folder` recognises one (frames in the order of their number), `iter_frame_folder` reads it
as a clip sampled like a video.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emoclip.media import LimitError, SampledFrame, VideoDecodeError, image_kind
from emoclip.media.probe import read_head

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "IMAGE_SUFFIXES",
    "FrameFolder",
    "ImageDecodeError",
    "StillImage",
    "frame_folder",
    "is_image_file",
    "iter_frame_folder",
    "read_image",
]

# Formats read as still images (GIF and other multi-frame formats are not among them).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff"})
_READABLE_KINDS = frozenset({"JPEG", "PNG", "WebP", "BMP", "TIFF"})
# Pillow's own bomb guard is a warning up to 2x its limit; we check pixels ourselves.
DEFAULT_MAX_PIXELS = 100_000_000
# Longer sides beyond this are refused whatever the pixel count (a 30000x10 strip holds no face).
MAX_IMAGE_SIDE = 20_000
# "<prefix><number><suffix>": the number is the last run of digits before the extension.
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")
_EXIF_ORIENTATION = 0x0112


class ImageDecodeError(VideoDecodeError):
    """A missing, empty, corrupt or unsupported image, or a folder that is not a clip.

    A `VideoDecodeError` (a `ValueError`), so callers that handle bad videos handle bad images.
    """


@dataclass(frozen=True)
class StillImage:
    """An image read by `read_image`.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB array in [0, 255], upright.
        format: The file's format (``"JPEG"``, ``"PNG"``, ...), or ``"array"``.
        width: Width of the upright image in pixels.
        height: Height of the upright image in pixels.
        orientation: The EXIF orientation tag that was applied (1: none).
        alpha: Whether an alpha channel was composited on white.
    """

    image: np.ndarray
    format: str
    width: int
    height: int
    orientation: int = 1
    alpha: bool = False


@dataclass(frozen=True)
class FrameFolder:
    """A folder of numbered frames, as found by `frame_folder`.

    Attributes:
        path: The folder.
        frames: The frame files, ordered by their number.
        numbers: Their numbers, increasing.
    """

    path: Path
    frames: tuple[Path, ...]
    numbers: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.frames)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a file whose first bytes are a still-image signature (any format)."""
    p = Path(path)
    try:
        if not p.is_file():
            return False
        with p.open("rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return image_kind(head) is not None


def _open(p: Path) -> PILImage:
    """Open `p` lazily with Pillow (header only) after the cheap checks."""
    from PIL import Image, UnidentifiedImageError

    head = read_head(p, "image", ImageDecodeError)
    kind = image_kind(head)
    if kind is not None and kind not in _READABLE_KINDS:
        raise ImageDecodeError(
            f"'{p.name}' is a {kind} image; JPEG, PNG, WebP, BMP and TIFF are supported"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: our own limit decides
            return Image.open(p)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageDecodeError(
            f"Cannot read '{p.name}' as an image: not an image Pillow understands, or corrupt"
        ) from e
    except Image.DecompressionBombError as e:
        raise LimitError(f"'{p.name}' is too large to decode: {e}") from e


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
) -> StillImage:
    """Read one still image upright as RGB.

    Args:
        path: A JPEG, PNG, WebP, BMP or TIFF file.
        max_pixels: Refuse images with more pixels (width * height), checked from the header
            before decoding. None: no limit (Pillow's own decompression-bomb guard still applies).
        max_side: If given, an image whose longer side exceeds it is downsized (``INTER_AREA``),
            keeping the aspect ratio.

    Returns:
        A `StillImage` whose ``image`` is ``(H, W, 3)`` uint8 RGB, EXIF orientation applied, alpha
        composited on white, grey/palette/CMYK/16-bit converted.

    Raises:
        ImageDecodeError: Missing, empty, zero-sized, corrupt or unsupported file.
        LimitError: More than `max_pixels` pixels, or a side longer than `MAX_IMAGE_SIDE`.
    """
    from PIL import Image, ImageOps

    p = Path(path)
    im = _open(p)
    try:
        width, height = im.size
        if width < 1 or height < 1:
            raise ImageDecodeError(f"'{p.name}' has no pixels ({width}x{height})")
        if max(width, height) > MAX_IMAGE_SIDE:
            raise LimitError(
                f"the image is {width}x{height} pixels; sides up to {MAX_IMAGE_SIDE} pixels are accepted"
            )
        if max_pixels is not None and width * height > max_pixels:
            raise LimitError(
                f"the image is {width}x{height}; the limit is {max_pixels / 1e6:.1f} megapixels"
            )
        fmt = im.format or "image"
        try:
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except Exception:  # a damaged EXIF block is not worth refusing the picture
            orientation = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
            upright = ImageOps.exif_transpose(im) if orientation in range(2, 9) else im
            rgb, alpha = _to_rgb(upright)
            array = np.asarray(rgb, dtype=np.uint8)
    except (ImageDecodeError, LimitError):
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"Cannot decode image '{p.name}': corrupt or truncated ({e})") from e
    finally:
        im.close()
    array = _resize(array, max_side)
    return StillImage(
        np.ascontiguousarray(array),
        fmt,
        int(array.shape[1]),
        int(array.shape[0]),
        orientation if orientation in range(1, 9) else 1,
        alpha,
    )


def _to_rgb(im: PILImage) -> tuple[PILImage, bool]:
    """A Pillow image in any mode -> (RGB image, whether alpha was composited on white)."""
    from PIL import Image

    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale to 8 bits by the type's range
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode != "I" or arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB"), False
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        grey = (
            np.zeros(arr.shape, np.uint8)
            if hi <= lo
            else ((arr - lo) / (hi - lo) * 255).astype(np.uint8)
        )
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB"), False
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), True
    if mode == "RGB":
        return im, False
    return im.convert("RGB"), False  # L, 1, CMYK, YCbCr, LAB, HSV, I;16 variants above


def _resize(image: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    import cv2

    scale = max_side / max(h, w)
    return cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def image_from_array(image: np.ndarray) -> StillImage:
    """Wrap an in-memory image: ``(H, W, 3)`` uint8 RGB, ``(H, W)`` grey or ``(H, W, 4)`` RGBA.

    Raises:
        ImageDecodeError: Another shape or dtype, or no pixels.
    """
    arr = np.asarray(image)
    if (
        arr.dtype != np.uint8
        or arr.ndim not in (2, 3)
        or (arr.ndim == 3 and arr.shape[2] not in (3, 4))
    ):
        raise ImageDecodeError(f"an image must be (H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageDecodeError(f"the image has no pixels: shape {arr.shape}")
    alpha = arr.ndim == 3 and arr.shape[2] == 4
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif alpha:
        a = arr[..., 3:4].astype(np.float32) / 255.0
        arr = (arr[..., :3] * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)
    return StillImage(
        np.ascontiguousarray(arr), "array", int(arr.shape[1]), int(arr.shape[0]), 1, alpha
    )


# --------------------------------------------------------------------------------------------
# Frame folders
# --------------------------------------------------------------------------------------------


def _visible_files(folder: Path) -> list[Path]:
    return [q for q in folder.iterdir() if not q.name.startswith(".") and q.name != "Thumbs.db"]


def frame_folder(path: str | os.PathLike[str], *, min_frames: int = 2) -> FrameFolder | None:
    """The folder as a clip of numbered frames, or None when it is not one.

    A folder is a clip when it holds no sub-folders, at least `min_frames` files (hidden files
    ignored), all with an image suffix, named ``<prefix><number><suffix>`` with one common prefix
    and suffix and distinct numbers. Frames are ordered by their number (``2.png`` before
    ``10.png``).
    """
    p = Path(path)
    if not p.is_dir():
        return None
    try:
        entries = _visible_files(p)
    except OSError:
        return None
    if len(entries) < min_frames or any(not q.is_file() for q in entries):
        return None
    pattern: tuple[str, str] | None = None
    numbered: list[tuple[int, Path]] = []
    for q in entries:
        if q.suffix.lower() not in IMAGE_SUFFIXES:
            return None
        m = _NUMBERED.match(q.stem)
        if m is None:
            return None
        key = (m.group(1), m.group(3) + q.suffix.lower())
        if pattern is None:
            pattern = key
        elif key != pattern:
            return None
        numbered.append((int(m.group(2)), q))
    numbered.sort(key=lambda item: item[0])
    numbers = [n for n, _ in numbered]
    if len(set(numbers)) != len(numbers):
        return None
    return FrameFolder(p, tuple(q for _, q in numbered), tuple(numbers))


def iter_frame_folder(
    folder: FrameFolder,
    fps: float,
    sample_fps: float,
    *,
    max_frames: int | None = None,
    max_side: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[SampledFrame]:
    """Read a frame folder as a clip at `fps`, sampled at `sample_fps` like a video.

    Frame k (in number order) is at time ``k / fps``; every frame is kept when ``fps <=
    sample_fps``, else the first frame at or after each target time ``j / sample_fps``. Only kept
    frames are decoded.

    Args:
        folder: From `frame_folder`.
        fps: The frames' rate (> 0).
        sample_fps: The model's sampling rate (> 0).
        max_frames: Stop after this many sampled frames (None: no limit).
        max_side: Downsize frames whose longer side exceeds this.
        max_pixels: Refuse frames with more pixels (from each header, before decoding).

    Yields:
        `SampledFrame`s with ``(H, W, 3)`` uint8 RGB images.

    Raises:
        ValueError: A non-positive `fps` or `sample_fps`.
        ImageDecodeError: A frame that cannot be read (named in the message).
        LimitError: A frame with more than `max_pixels` pixels.
    """
    for name, value in (("fps", fps), ("sample_fps", sample_fps)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    return _iter_frame_folder(
        folder.frames, float(fps), float(sample_fps), max_frames, max_side, max_pixels
    )


def _iter_frame_folder(
    frames: Sequence[Path],
    fps: float,
    sample_fps: float,
    max_frames: int | None,
    max_side: int | None,
    max_pixels: int | None,
) -> Iterator[SampledFrame]:
    period = 1.0 / sample_fps
    take_all = fps <= sample_fps
    next_target, sampled = 0.0, 0
    for i, frame in enumerate(frames):
        if max_frames is not None and sampled >= max_frames:
            return
        t = i / fps
        if not take_all:
            if t + 1e-6 < next_target:
                continue
            next_target = (math.floor((t + 1e-6) / period) + 1) * period
        image = read_image(frame, max_pixels=max_pixels, max_side=max_side).image
        yield SampledFrame(sampled, i, t, image)
        sampled += 1
