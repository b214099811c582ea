"""What the predictor accepts and how each input becomes frames: input types, `VideoLimits`, the
routing of a path or array to a still image, a frame folder or a video (checked against the
limits before any heavy work), and `iter_inputs` expanding the command line's paths.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoclip.media import LimitError, SampledFrame, VideoDecodeError, iter_frames, probe_video
from emoclip.media.images import (
    StillImage,
    frame_folder,
    image_from_array,
    is_image_file,
    iter_frame_folder,
    read_image,
)
from emoclip.model.config import PreprocessConfig

__all__ = [
    "DECODE_MAX_SIDE",
    "FRAME_FOLDER_FPS",
    "SINGLE_THREAD_DECODE_PIXELS",
    "VIDEO_SUFFIXES",
    "ImageInput",
    "MediaItem",
    "VideoInput",
    "VideoLimits",
    "array_frames",
    "clip_frames",
    "expected_frames",
    "folder_frames",
    "is_image_path",
    "iter_inputs",
    "iter_videos",
    "read_still",
]

VideoInput = str | os.PathLike | np.ndarray | Sequence[np.ndarray]
ImageInput = str | os.PathLike | np.ndarray
FRAME_FOLDER_FPS = (
    25.0  # frame rate of a folder of numbered frames unless told (DFEW, MAFW, FERV39k, AFEW)
)
SINGLE_THREAD_DECODE_PIXELS = 1280 * 720  # videos up to this size decode on one FFmpeg thread
DECODE_MAX_SIDE = (
    1920  # frames are decoded up to 1080p as they are; face detection downsizes its own copy
)


@dataclass(frozen=True)
class VideoLimits:
    """Limits checked before any heavy work; None means unlimited."""

    max_bytes: int | None = None
    max_duration: float | None = None  # seconds
    max_pixels: int | None = None  # width * height
    max_sampled_frames: int | None = None


def array_frames(
    frames: Sequence[np.ndarray] | np.ndarray, rate: float, sample_fps: float
) -> Iterator[SampledFrame]:
    """Sample in-memory frames at `sample_fps` (all of them when `rate` <= `sample_fps`)."""
    step = max(1.0, rate / sample_fps)
    next_pick, k = 0.0, 0
    for i, image in enumerate(frames):
        if i + 1e-9 < next_pick:
            continue
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise VideoDecodeError(
                f"frames must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}"
            )
        yield SampledFrame(index=k, source_index=i, time=i / rate, image=image)
        next_pick += step
        k += 1


def clip_frames(
    video: VideoInput, fps: float | None, cfg: PreprocessConfig, lim: VideoLimits
) -> tuple[Iterator[SampledFrame], dict[str, Any]]:
    """The sampled frames of a clip (a video file, a frame folder, or (T, H, W, 3) uint8 RGB
    frames at `fps`) and its metadata, checked against `lim` before the first frame is decoded."""
    if isinstance(video, (str, os.PathLike)) and Path(video).is_dir():
        return folder_frames(Path(video), fps, cfg, lim)
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        size = path.stat().st_size
        if lim.max_bytes is not None and size > lim.max_bytes:
            raise LimitError(
                f"the file is {size / 1e6:.1f} MB; the limit is {lim.max_bytes / 1e6:.1f} MB"
            )
        info = probe_video(path, max_pixels=lim.max_pixels)  # checked before decoding a frame
        if lim.max_pixels is not None and info.width * info.height > lim.max_pixels:
            raise LimitError(
                f"the video is {info.width}x{info.height}; the limit is {lim.max_pixels / 1e6:.1f} megapixels"
            )
        if lim.max_duration is not None and info.duration > lim.max_duration:
            raise LimitError(
                f"the video lasts {info.duration:.0f} s; the limit is {lim.max_duration:.0f} s"
            )
        meta = {
            "name": path.name,
            "kind": "video",
            "duration": info.duration,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "rotation": info.rotation,
        }
        max_side = DECODE_MAX_SIDE if cfg.face_detection else None
        # max_duration again while decoding: a header can lie about (or lack) the duration
        # up to 720p one decoder thread: it decodes beside an encoder that keeps every core busy,
        # and FFmpeg's frame threads would cost more CPU than they save; larger frames (where the
        # decoder is the slower stage) get FFmpeg's threads
        threads = 1 if info.width * info.height <= SINGLE_THREAD_DECODE_PIXELS else 0
        return iter_frames(
            path,
            cfg.sample_fps,
            max_frames=lim.max_sampled_frames,
            max_side=max_side,
            max_duration=lim.max_duration,
            decode_threads=threads,
        ), meta
    frames = list(video) if not isinstance(video, np.ndarray) else video
    if len(frames) == 0:
        raise VideoDecodeError("no frames were given")
    rate = fps or cfg.sample_fps
    meta = {
        "name": "frames",
        "kind": "frames",
        "duration": len(frames) / rate,
        "fps": rate,
        "width": int(frames[0].shape[1]),
        "height": int(frames[0].shape[0]),
        "rotation": 0,
    }
    return array_frames(frames, rate, cfg.sample_fps), meta


def folder_frames(
    path: Path, fps: float | None, cfg: PreprocessConfig, lim: VideoLimits
) -> tuple[Iterator[SampledFrame], dict[str, Any]]:
    """A folder of numbered frames as a clip at `fps` (default `FRAME_FOLDER_FPS`)."""
    folder = frame_folder(path)
    if folder is None:
        raise VideoDecodeError(
            f"'{path.name}' is a folder but not a clip: its files are not all images "
            "numbered with one common pattern (e.g. 00001.jpg, 00002.jpg, ...)"
        )
    rate = float(fps or FRAME_FOLDER_FPS)
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    duration = len(folder) / rate
    if lim.max_duration is not None and duration > lim.max_duration:
        raise LimitError(
            f"the clip lasts {duration:.0f} s ({len(folder)} frames at {rate:g} fps); "
            f"the limit is {lim.max_duration:.0f} s"
        )
    first = read_image(folder.frames[0], max_pixels=lim.max_pixels or None)
    meta = {
        "name": path.name,
        "kind": "frames",
        "duration": duration,
        "fps": rate,
        "width": first.width,
        "height": first.height,
        "rotation": 0,
        "frames": len(folder),
    }
    max_side = DECODE_MAX_SIDE if cfg.face_detection else None
    return iter_frame_folder(
        folder,
        rate,
        cfg.sample_fps,
        max_frames=lim.max_sampled_frames,
        max_side=max_side,
        max_pixels=lim.max_pixels or None,
    ), meta


def read_still(video: VideoInput, lim: VideoLimits) -> tuple[StillImage, dict[str, Any]] | None:
    """The still image `video` is (read and checked against the limits), or None for a clip."""
    t0 = time.perf_counter()
    if (
        isinstance(video, np.ndarray)
        and video.ndim == 3
        and video.shape[-1] in (3, 4)
        and video.dtype == np.uint8
    ):
        still = image_from_array(video)
        name, size = "image", None
    elif isinstance(video, (str, os.PathLike)) and is_image_path(Path(video)):
        path = Path(video)
        size = path.stat().st_size
        if lim.max_bytes is not None and size > lim.max_bytes:
            raise LimitError(
                f"the file is {size / 1e6:.1f} MB; the limit is {lim.max_bytes / 1e6:.1f} MB"
            )
        still = read_image(
            path, **({"max_pixels": lim.max_pixels} if lim.max_pixels is not None else {})
        )
        name = path.name
    else:
        return None
    if lim.max_pixels is not None and still.width * still.height > lim.max_pixels:
        raise LimitError(
            f"the image is {still.width}x{still.height}; "
            f"the limit is {lim.max_pixels / 1e6:.1f} megapixels"
        )
    meta = {
        "name": name,
        "format": still.format,
        "width": still.width,
        "height": still.height,
        "rotation": 0,
        "exif_orientation": still.orientation,
        "alpha": still.alpha,
        "_decode_seconds": time.perf_counter() - t0,
    }
    if size is not None:
        meta["bytes"] = size
    return still, meta


def expected_frames(
    meta: dict[str, Any], sample_fps: float, max_sampled_frames: int | None
) -> int | None:
    """Sampled frames a clip will give, from its duration and frame rate (None if unknown)."""
    duration, fps = float(meta.get("duration") or 0.0), float(meta.get("fps") or 0.0)
    if duration <= 0 or fps <= 0:
        return None
    n = max(1, round(duration * min(fps, sample_fps)))
    cap = max_sampled_frames
    return min(n, cap) if cap else n


def is_image_path(path: Path) -> bool:
    """A file read as a still image: an image signature, or an image suffix on a file that has
    no video signature (so an empty or corrupt ``.jpg`` gets an image's error message)."""
    from emoclip.media.images import IMAGE_SUFFIXES

    if path.is_dir():
        return False
    return is_image_file(path) or (path.suffix.lower() in IMAGE_SUFFIXES and path.exists())


VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)


@dataclass(frozen=True)
class MediaItem:
    """One input found by `iter_inputs`.

    Attributes:
        path: The file, or the folder for a frame folder.
        kind: ``"video"``, ``"image"`` or ``"frames"`` (a folder of numbered frames: one clip).
        frames: Number of frames of a frame folder (0 otherwise).
    """

    path: Path
    kind: str
    frames: int = 0


def iter_inputs(paths: Iterable[str | os.PathLike]) -> Iterator[MediaItem]:
    """Expand the command line's paths into clips and images.

    A file is an image when its content (or, for a missing file, its suffix) says so, else a
    video. A folder of numbered frames (`images.frame_folder`) is one clip; any other folder is a
    batch: its videos and images (by suffix) and its frame folders, recursively and sorted by
    path (symbolic links to folders are not followed).
    """
    from emoclip.media.images import IMAGE_SUFFIXES

    def walk(folder: Path) -> Iterator[MediaItem]:
        clip = frame_folder(folder)
        if clip is not None:
            yield MediaItem(folder, "frames", len(clip))
            return
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for q in entries:
            if q.name.startswith("."):
                continue
            if q.is_dir():
                if not q.is_symlink():
                    yield from walk(q)
            elif q.suffix.lower() in VIDEO_SUFFIXES:
                yield MediaItem(q, "video")
            elif q.suffix.lower() in IMAGE_SUFFIXES:
                yield MediaItem(q, "image")

    for p in map(Path, paths):
        if p.is_dir():
            yield from walk(p)
        elif is_image_file(p) or (not p.exists() and p.suffix.lower() in IMAGE_SUFFIXES):
            yield MediaItem(p, "image")
        else:
            yield MediaItem(p, "video")


def iter_videos(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Expand folders into the video files they contain (sorted), keep files as they are."""
    exts = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.suffix.lower() in exts)
        else:
            yield p
