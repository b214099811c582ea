"""Time-based frame sampling and streaming decoding with OpenCV (FFmpeg backend); numpy only.

Frames are decoded one at a time and never all held in memory (except by `read_frames`, which is
meant for short clips). Every frame that leaves this module is an upright ``(H, W, 3)`` uint8 RGB
array with values in [0, 255]. Opening and validating a file is `emoclip.media.probe`'s; `emoclip.media`
re-exports the public names.

Sampling is time-based and deterministic: with ``sample_fps`` the target times are ``start``,
``start + 1/sample_fps``, ... and a frame is kept when its timestamp is the first at or after the
next target. Timestamps come from the decoder (``CAP_PROP_POS_MSEC``, the frame's presentation time)
when they are sane and increasing, so variable-frame-rate files are sampled by real time; otherwise
they fall back to ``index / fps``. Frames that are not kept are only ``grab()``-ed (decoded, never
colour-converted).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emoclip.media.probe import (
    MAX_SANE_FPS,
    LimitError,
    VideoDecodeError,
    check_file,
    open_capture,
    sane_fps,
    upright,
)

__all__ = [
    "FrameClock",
    "SampledFrame",
    "TimeSampler",
    "iter_frames",
    "read_frames",
    "sample_indices",
]

# FFmpeg's own guess when a container has no usable frame rate.
_FALLBACK_FPS = 25.0


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
                self, "max_decoded_frames", math.ceil((self.max_duration + 1.0) * MAX_SANE_FPS)
            )


def to_rgb(bgr: np.ndarray, manual_rotation: int, max_side: int | None) -> np.ndarray:
    """Decoded BGR frame -> upright, optionally downsized, contiguous (H, W, 3) uint8 RGB.

    Every frame `iter_frames` yields goes through this function, looked up at call time, so that
    the benchmarks' work counter can wrap it to count the frames converted (skipped frames are
    never converted). Not re-exported by `emoclip.media`: an instrumentation point, not API.

    Args:
        bgr: ``(H, W, 3)`` uint8 BGR frame as OpenCV decodes it (``(H, W)`` grey is accepted).
        manual_rotation: Degrees clockwise still to apply (see `emoclip.media.probe.upright`).
        max_side: Downsize (``cv2.INTER_AREA``) so that the longer side is at most this.

    Returns:
        ``(H', W', 3)`` uint8 RGB array, upright.
    """
    image = upright(bgr, manual_rotation)
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
    return _iter_frames(check_file(path), opts)


def _iter_frames(p: Path, opts: _Sampling) -> Iterator[SampledFrame]:
    max_frames, max_side, max_duration = opts.max_frames, opts.max_side, opts.max_duration
    max_decoded_frames = opts.max_decoded_frames
    cap, _, manual_rotation = open_capture(p, opts.decode_threads)
    try:
        fps = sane_fps(cap.get(cv2.CAP_PROP_FPS))
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
                        sampled, source_index, t, to_rgb(bgr, manual_rotation, max_side)
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
