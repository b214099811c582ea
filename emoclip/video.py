"""Streaming video decoding with OpenCV (FFmpeg backend); numpy only, no torch.

Frames are decoded one at a time and never all held in memory (except by `read_frames`, which is
meant for short clips). Every frame that leaves this module is an upright ``(H, W, 3)`` uint8 RGB
array with values in [0, 255].

Sampling is time-based and deterministic: with ``sample_fps`` the target times are ``start``,
``start + 1/sample_fps``, ... and a frame is kept when its timestamp is the first at or after the
next target. Timestamps come from the decoder (``CAP_PROP_POS_MSEC``, the frame's presentation time)
when they are sane and increasing, so variable-frame-rate files are sampled by real time; otherwise
they fall back to ``index / fps``. Frames that are not kept are only ``grab()``-ed (decoded, never
colour-converted).

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "LimitError",
    "SampledFrame",
    "VideoDecodeError",
    "VideoInfo",
    "iter_frames",
    "probe_video",
    "read_frames",
    "sample_indices",
]

# FFmpeg's own guess when a container has no usable frame rate.
_FALLBACK_FPS = 25.0
# Container frame rates outside this range are treated as unknown.
_MAX_SANE_FPS = 1000.0

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


@dataclass(frozen=True)
class SampledFrame:
    """One frame chosen by `iter_frames`.

    Attributes:
        index: Running index among the sampled frames (0, 1, 2, ...).
        source_index: Frame number in the file (0-based decode order).
        time: Presentation time in seconds.
        image: ``(H, W, 3)`` uint8 RGB array in [0, 255], upright.
    """

    index: int
    source_index: int
    time: float
    image: np.ndarray


# --------------------------------------------------------------------------------------------
# Opening and validation
# --------------------------------------------------------------------------------------------


def _check_file(path: str | os.PathLike[str]) -> Path:
    """Cheap checks before FFmpeg sees the file; raise `VideoDecodeError` with a clear reason."""
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(f"Video file not found: '{p}'")
    if p.is_dir():
        raise VideoDecodeError(f"Expected a video file but got a directory: '{p}'")
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise VideoDecodeError(f"Cannot read video file '{p}': {e}") from e
    if size == 0:
        raise VideoDecodeError(f"Video file is empty (0 bytes): '{p}'")
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


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate `image` clockwise by `rotation` degrees (0/90/180/270), as a display matrix asks."""
    code = _ROTATE_CODES.get(rotation)
    return image if code is None else cv2.rotate(image, code)


def _sane_fps(value: float) -> float:
    return float(value) if math.isfinite(value) and 0.0 < value <= _MAX_SANE_FPS else 0.0


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
    p = _check_file(path)
    cap, rotation, manual_rotation = open_capture(p)
    try:
        header = _header_pixels(cap)
        if header is not None:
            _check_pixels(*header, max_pixels)
        fps = _sane_fps(cap.get(cv2.CAP_PROP_FPS))
        frame_count = _sane_count(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, bgr = cap.read()
        if not ok or bgr is None or bgr.size == 0:
            raise VideoDecodeError(f"No decodable video frame in '{p}'")
        height, width = _upright(bgr, manual_rotation).shape[:2]
        _check_pixels(width, height, max_pixels)
    finally:
        cap.release()
    duration = frame_count / fps if fps > 0 else 0.0
    return VideoInfo(str(path), int(width), int(height), fps, frame_count, duration, rotation)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


class TimeSampler:
    """Decides which frames to keep, from their timestamps alone (pure logic, unit-testable).

    Target times are ``start + k / sample_fps``; a frame is kept when its time is the first at or
    after the next target (with a small tolerance for millisecond-rounded container timestamps).
    With ``take_all`` every frame in the window is kept.
    """

    def __init__(
        self, sample_fps: float, start: float, end: float | None, take_all: bool = False
    ) -> None:
        self.period = 1.0 / sample_fps
        self.start = start
        self.end = end
        self.take_all = take_all
        self.tolerance = min(1e-3, 0.25 * self.period)
        self._next_k = 0

    def done(self, t: float) -> bool:
        """True when `t` is at or past the end of the window (no later frame can be kept)."""
        return self.end is not None and t >= self.end - 1e-9

    def keep(self, t: float) -> bool:
        """Whether the frame at time `t` (seconds, non-decreasing across calls) is sampled."""
        if t < self.start - self.tolerance or self.done(t):
            return False
        if self.take_all:
            return True
        if t + self.tolerance < self.start + self._next_k * self.period:
            return False
        # Next target is the first one strictly after t, so one frame serves one target at most.
        self._next_k = math.floor((t + self.tolerance - self.start) / self.period) + 1
        return True


class FrameClock:
    """Per-frame timestamps: the decoder's when sane and increasing, else ``index / fps``."""

    def __init__(self, fps: float) -> None:
        self.fps = fps if fps > 0 else _FALLBACK_FPS
        self._last: float | None = None

    def time(self, cap: cv2.VideoCapture, index: int) -> float:
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        t = msec / 1000.0 if math.isfinite(msec) and msec >= 0 else math.nan
        last = self._last
        if math.isnan(t) or (last is not None and t <= last):
            t = index / self.fps
            if last is not None and t <= last:
                t = last + 1.0 / self.fps
        self._last = t
        return t


@dataclass(frozen=True)
class _Sampling:
    """`iter_frames`'s sampling and limit options, validated on creation (see its docstring)."""

    sample_fps: float
    max_frames: int | None = None
    start: float = 0.0
    end: float | None = None
    max_side: int | None = None
    max_duration: float | None = None
    max_decoded_frames: int | None = None
    decode_threads: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sample_fps) and self.sample_fps > 0):
            raise ValueError(f"sample_fps must be a positive number, got {self.sample_fps!r}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {self.max_frames!r}")
        if not (math.isfinite(self.start) and self.start >= 0):
            raise ValueError(f"start must be >= 0 seconds, got {self.start!r}")
        if self.end is not None and not self.end > self.start:
            raise ValueError(f"end must be greater than start ({self.start!r}), got {self.end!r}")
        if self.max_side is not None and self.max_side < 1:
            raise ValueError(f"max_side must be >= 1 or None, got {self.max_side!r}")
        if self.max_duration is not None and not (self.max_duration > 0):  # also refuses NaN
            raise ValueError(f"max_duration must be > 0 seconds or None, got {self.max_duration!r}")
        if self.max_decoded_frames is not None and self.max_decoded_frames < 1:
            raise ValueError(
                f"max_decoded_frames must be >= 1 or None, got {self.max_decoded_frames!r}"
            )
        threads = self.decode_threads
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ValueError(f"decode_threads must be an int >= 0, got {threads!r}")
        if (
            self.max_decoded_frames is None
            and self.max_duration is not None
            and math.isfinite(self.max_duration)
        ):
            # More frames than the highest sane frame rate allows in that time: no real video.
            object.__setattr__(
                self, "max_decoded_frames", math.ceil((self.max_duration + 1.0) * _MAX_SANE_FPS)
            )


def _to_rgb(bgr: np.ndarray, manual_rotation: int, max_side: int | None) -> np.ndarray:
    """Decoded BGR frame -> upright, optionally downsized, contiguous (H, W, 3) uint8 RGB."""
    image = _upright(bgr, manual_rotation)
    h, w = image.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        new_size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (W, H)
        image = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
    if image.ndim == 2:  # defensive: some backends hand back grey frames
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def iter_frames(
    path: str | os.PathLike[str],
    sample_fps: float = 7.5,
    *,
    max_frames: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    max_side: int | None = None,
    max_duration: float | None = None,
    max_decoded_frames: int | None = None,
    decode_threads: int = 0,
) -> Iterator[SampledFrame]:
    """Decode a video lazily, yielding frames sampled at `sample_fps` (see the module docstring).

    Args:
        path: Path to a video file.
        sample_fps: Sampling rate in frames per second. When it is >= the file's frame rate every
            frame is taken.
        max_frames: Stop after this many sampled frames (None: no limit).
        start: Window start in seconds; earlier frames are skipped (decoded, not converted).
        end: Window end in seconds, exclusive (None: to the end of the file).
        max_side: If given, sampled frames whose longer side exceeds it are downsized with
            ``cv2.INTER_AREA``, keeping the aspect ratio.
        max_duration: If given, raise `LimitError` on reaching a frame past this time (seconds):
            the container's duration can be missing or false, so it is enforced while decoding.
        max_decoded_frames: If given, raise `LimitError` when the file has more frames than
            this (decoded or skipped alike), which bounds the work on absurd frame rates. With
            `max_duration` it defaults to 1000 frames per allowed second (plus one second).
        decode_threads: FFmpeg decoder threads; 0 lets FFmpeg choose (one per core). One thread
            costs the least CPU per frame, the right choice when the decoder runs beside an
            encoder that keeps every core busy.

    Yields:
        `SampledFrame` objects whose ``image`` is an upright ``(H, W, 3)`` uint8 RGB array in
        [0, 255]. A truncated file yields the frames that decode; a window past the end of the
        video yields nothing.

    Raises:
        ValueError: Invalid arguments (at call time).
        VideoDecodeError: Missing, empty, still-image or directory paths (at call time); files
            FFmpeg cannot open or decode no frame of (on the first ``next()``).
        LimitError: The video goes past `max_duration` or `max_decoded_frames` (while iterating).
    """
    opts = _Sampling(
        sample_fps,
        max_frames,
        start,
        end,
        max_side,
        max_duration,
        max_decoded_frames,
        decode_threads,
    )
    return _iter_frames(_check_file(path), opts)


def _iter_frames(p: Path, opts: _Sampling) -> Iterator[SampledFrame]:
    max_frames, max_side, max_duration = opts.max_frames, opts.max_side, opts.max_duration
    max_decoded_frames = opts.max_decoded_frames
    cap, _, manual_rotation = open_capture(p, opts.decode_threads)
    try:
        fps = _sane_fps(cap.get(cv2.CAP_PROP_FPS))
        sampler = TimeSampler(
            opts.sample_fps, opts.start, opts.end, take_all=0 < fps <= opts.sample_fps
        )
        clock = FrameClock(fps)
        # A frame may start up to one frame period after the limit's last instant.
        overrun = None if max_duration is None else max_duration + max(1e-3, 1.0 / clock.fps)
        source_index = sampled = failed = 0
        grabbed = False
        while (max_frames is None or sampled < max_frames) and cap.grab():
            grabbed = True
            if max_decoded_frames is not None and source_index >= max_decoded_frames:
                raise LimitError(
                    f"'{p.name}' has more than {max_decoded_frames} frames; the limit is "
                    f"{max_decoded_frames}"
                )
            t = clock.time(cap, source_index)
            if overrun is not None and t >= overrun:
                raise LimitError(
                    f"the video lasts more than {max_duration:g} s (found a frame at {t:.1f} s, "
                    f"whatever its header says); the limit is {max_duration:g} s"
                )
            if sampler.done(t):
                break
            if sampler.keep(t):
                ok, bgr = cap.retrieve()
                if ok and bgr is not None and bgr.size > 0:
                    yield SampledFrame(
                        sampled, source_index, t, _to_rgb(bgr, manual_rotation, max_side)
                    )
                    sampled += 1
                else:
                    failed += 1  # a damaged frame: skip it, the next one serves the same target
            source_index += 1
        if not grabbed or (sampled == 0 and failed > 0):
            raise VideoDecodeError(f"No decodable video frame in '{p}'")
    finally:
        cap.release()


def read_frames(
    path: str | os.PathLike[str],
    sample_fps: float = 7.5,
    max_frames: int | None = None,
    max_side: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a short clip into memory; see `iter_frames` for the sampling rules.

    Args:
        path: Path to a video file.
        sample_fps: Sampling rate in frames per second.
        max_frames: Keep at most this many sampled frames (None: all).
        max_side: Downsize frames whose longer side exceeds this (None: keep the size).

    Returns:
        ``(frames, times)``: frames ``(N, H, W, 3)`` uint8 RGB in [0, 255] (N >= 1), and their
        presentation times ``(N,)`` float64 in seconds.

    Raises:
        VideoDecodeError: As `iter_frames`, or when no sampled frame could be decoded.
    """
    images: list[np.ndarray] = []
    times: list[float] = []
    for frame in iter_frames(path, sample_fps, max_frames=max_frames, max_side=max_side):
        images.append(frame.image)
        times.append(frame.time)
    if not images:
        raise VideoDecodeError(f"No decodable video frame in '{path}'")
    return np.stack(images), np.asarray(times, dtype=np.float64)


def sample_indices(num_available: int, num_wanted: int) -> np.ndarray:
    """Spread `num_wanted` picks uniformly over ``range(num_available)``, deterministically.

    Pick k is the centre of the k-th of `num_wanted` equal segments, so the picks are symmetric
    and never touch the very first/last frame unless segments are a single frame wide.

    Args:
        num_available: Number of items to choose from (> 0).
        num_wanted: Number of picks (>= 0). May exceed `num_available`; indices then repeat.

    Returns:
        ``(num_wanted,)`` int64 indices in ``[0, num_available)``, non-decreasing (strictly
        increasing when ``num_wanted <= num_available``).

    Raises:
        ValueError: If ``num_available <= 0`` or ``num_wanted < 0``.
    """
    if num_available <= 0:
        raise ValueError(f"num_available must be > 0, got {num_available}")
    if num_wanted < 0:
        raise ValueError(f"num_wanted must be >= 0, got {num_wanted}")
    centres = (np.arange(num_wanted, dtype=np.float64) + 0.5) * (num_available / max(num_wanted, 1))
    return np.minimum(np.floor(centres).astype(np.int64), num_available - 1)
