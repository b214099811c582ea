"""Opening and probing videos with OpenCV (FFmpeg backend); numpy only, no torch.

Cheap checks before FFmpeg sees a file (`check_file`: missing, a directory, empty, a still image),
opening it (`open_capture`), its metadata (`probe_video`, `VideoInfo`), the errors
(`VideoDecodeError`, `LimitError`) and the helpers the frame iterator (`emoclip.media.frames`) shares:
`upright`, `sane_fps`, `MAX_SANE_FPS`. `emoclip.media` re-exports the public names.

Rotation: phone videos carry a display rotation (mp4 ``tkhd`` matrix / display-matrix side data).
OpenCV's FFmpeg backend applies it itself when ``CAP_PROP_ORIENTATION_AUTO`` is on (the default in
OpenCV 4.x); we switch it on explicitly and, if a backend refuses, switch it off and rotate with
``cv2.rotate`` instead, so a frame is rotated exactly once. `VideoInfo.rotation` reports the
metadata angle (``CAP_PROP_ORIENTATION_META``), while `VideoInfo.width`/`height` describe the
upright frames that `iter_frames` yields.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "MAX_SANE_FPS",
    "LimitError",
    "VideoDecodeError",
    "VideoInfo",
    "check_file",
    "image_kind",
    "normalize_rotation",
    "open_capture",
    "probe_video",
    "sane_fps",
    "upright",
]

# Container frame rates outside this range are treated as unknown.
MAX_SANE_FPS = 1000.0

# Still-image signatures. FFmpeg happily "decodes" a PNG/JPEG as a one-frame video; we refuse them
# (animated GIF/WebP included) so an image uploaded by mistake gets a clear error.
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"qoif", "QOI"),
)

_ROTATE_CODES = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


class VideoDecodeError(ValueError):
    """Raised for missing, unreadable, empty or non-video input.

    The message says what was wrong and names the file.
    """


class LimitError(ValueError):
    """The input exceeds a configured limit (size, duration, resolution, frames).

    Raised here by `probe_video` (``max_pixels``, before any frame is decoded) and `iter_frames`
    (``max_duration``/``max_decoded_frames``, while decoding, for files whose header lies about
    their length); `emoclip.inference.predictor` re-exports it and raises it for its other limits.
    """


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video file, as read by `probe_video`.

    Attributes:
        path: The file path, as given.
        width: Width of the upright (rotation-corrected) frames, in pixels.
        height: Height of the upright frames, in pixels.
        fps: Frame rate from the container; 0.0 when the container has none that is usable.
        frame_count: The container's frame-count estimate; may be 0 or wrong (e.g. truncated files).
        duration: Duration estimate in seconds (``frame_count / fps``); 0.0 when unknown.
        rotation: Display rotation from the metadata, clockwise degrees in {0, 90, 180, 270}.
            Frames returned by this module are already rotated upright.
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    rotation: int


# --------------------------------------------------------------------------------------------
# Opening and validation
# --------------------------------------------------------------------------------------------


def read_head(
    p: Path, what: str = "video", error: type[VideoDecodeError] = VideoDecodeError
) -> bytes:
    """The first 16 bytes of a media file, after the checks every reader makes first.

    Raises `error` (a `VideoDecodeError`) naming `what` ("video", "image") when the file is
    missing, a directory, unreadable or empty.
    """
    article = "an" if what[:1] in "aeiou" else "a"
    if not p.exists():
        raise error(f"{what.capitalize()} file not found: '{p}'")
    if p.is_dir():
        raise error(f"Expected {article} {what} file but got a directory: '{p}'")
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise error(f"Cannot read {what} file '{p}': {e.strerror or e}") from e
    if size == 0:
        raise error(f"{what.capitalize()} file is empty (0 bytes): '{p}'")
    return head


def check_file(path: str | os.PathLike[str]) -> Path:
    """Cheap checks before FFmpeg sees the file; raise `VideoDecodeError` with a clear reason."""
    p = Path(path)
    head = read_head(p)
    kind = image_kind(head)
    if kind is not None:
        raise VideoDecodeError(f"'{p}' is a {kind} image, not a video")
    return p


def image_kind(head: bytes) -> str | None:
    """Name of the still-image format whose signature starts `head`, else None."""
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def open_capture(p: Path, threads: int = 0) -> tuple[cv2.VideoCapture, int, int]:
    """Open `p` with the FFmpeg backend (`threads` decoder threads; 0: FFmpeg's automatic choice).

    Returns:
        ``(capture, rotation, manual_rotation)``: the metadata rotation in degrees, and the rotation
        still to apply by hand (0 when OpenCV auto-rotates).
    """
    # An absolute path keeps FFmpeg from reading "name:rest.mp4" as a protocol URL.
    source = os.path.abspath(p)
    fd = None
    if not _is_utf8(source):
        # A file name that is not valid UTF-8 reaches Python as lone surrogates, and OpenCV's
        # string conversion crashes the process on those (segfault). Hand FFmpeg a /proc link
        # to the open file instead; its own open() then gets a new descriptor.
        if not os.path.isdir("/proc/self/fd"):
            raise VideoDecodeError(f"Cannot open '{p}': its name is not valid UTF-8; rename it")
        try:
            fd = os.open(source, os.O_RDONLY)
        except OSError as e:
            raise VideoDecodeError(f"Cannot read video file '{p}': {e.strerror or e}") from e
        source = f"/proc/self/fd/{fd}"
    try:
        params = [cv2.CAP_PROP_N_THREADS, int(threads)] if threads > 0 else []
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    finally:
        if fd is not None:
            os.close(fd)
    if not cap.isOpened():
        cap.release()
        raise VideoDecodeError(
            f"Cannot open '{p}' as a video: not a video container FFmpeg understands, "
            "corrupt, or without a video stream"
        )
    rotation = normalize_rotation(cap.get(cv2.CAP_PROP_ORIENTATION_META))
    if cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1) and cap.get(cv2.CAP_PROP_ORIENTATION_AUTO) == 1:
        return cap, rotation, 0
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)  # be sure it is off before rotating by hand
    return cap, rotation, rotation


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _header_pixels(cap: cv2.VideoCapture) -> tuple[int, int] | None:
    """Frame size from the stream header (no frame decoded), or None when it is not known."""
    w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if math.isfinite(w) and math.isfinite(h) and w >= 1 and h >= 1:
        return int(w), int(h)
    return None


def _check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise LimitError(
            f"the video is {width}x{height}; the limit is {max_pixels / 1e6:.1f} megapixels"
        )


def normalize_rotation(value: float) -> int:
    """Map a metadata angle (possibly negative, NaN or off by rounding) to {0, 90, 180, 270}."""
    if not math.isfinite(value):
        return 0
    return (round(value / 90.0) * 90) % 360


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate `image` clockwise by `rotation` degrees (0/90/180/270), as a display matrix asks."""
    code = _ROTATE_CODES.get(rotation)
    return image if code is None else cv2.rotate(image, code)


def sane_fps(value: float) -> float:
    return float(value) if math.isfinite(value) and 0.0 < value <= MAX_SANE_FPS else 0.0


def _sane_count(value: float) -> int:
    # Image demuxers report -2**63; treat anything non-finite, negative or absurd as unknown.
    return int(value) if math.isfinite(value) and 0 <= value < 2**40 else 0


def probe_video(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> VideoInfo:
    """Read a video's metadata and decode its first frame to prove it is a video.

    Args:
        path: Path to a video file.
        max_pixels: If given, refuse videos whose frames have more pixels (width * height). The
            stream header is checked before the first frame is decoded, so a huge video costs
            no decoding (the decoded frame is checked too, for headers without a size).

    Returns:
        The `VideoInfo`; ``width``/``height`` are those of the upright decoded frames.

    Raises:
        VideoDecodeError: Missing file, a directory, an empty file, a still image, a file FFmpeg
            cannot open (text, random bytes, audio only), or one with no decodable frame.
        LimitError: The frames have more than `max_pixels` pixels.
    """
    p = check_file(path)
    cap, rotation, manual_rotation = open_capture(p)
    try:
        header = _header_pixels(cap)
        if header is not None:
            _check_pixels(*header, max_pixels)
        fps = sane_fps(cap.get(cv2.CAP_PROP_FPS))
        frame_count = _sane_count(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, bgr = cap.read()
        if not ok or bgr is None or bgr.size == 0:
            raise VideoDecodeError(f"No decodable video frame in '{p}'")
        height, width = upright(bgr, manual_rotation).shape[:2]
        _check_pixels(width, height, max_pixels)
    finally:
        cap.release()
    duration = frame_count / fps if fps > 0 else 0.0
    return VideoInfo(str(path), int(width), int(height), fps, frame_count, duration, rotation)
