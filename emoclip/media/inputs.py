"""The input layer: `resolve_input` turns any input (path, ``file://`` URI, frame folder, array,
list of frames) once into a `MediaInput` (kind, rate, size, orientation, content key), checked
against `VideoLimits` before any heavy work; `clip_frames` streams a resolved clip's sampled
frames; `iter_inputs` expands the command line's paths. Nothing downstream asks again what an
input is.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

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
    "MediaInput",
    "MediaItem",
    "VideoInput",
    "VideoLimits",
    "array_frames",
    "clip_frames",
    "expected_frames",
    "is_image_path",
    "iter_inputs",
    "iter_videos",
    "resolve_input",
]

VideoInput = Union[str, os.PathLike, np.ndarray, Sequence[np.ndarray], "MediaInput"]
ImageInput = Union[str, os.PathLike, np.ndarray, "MediaInput"]
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


@dataclass(frozen=True, eq=False)
class MediaInput:
    """One input, resolved once by `resolve_input`: what it is and everything later stages need.

    Attributes:
        kind: ``"video"`` (a file), ``"photo"`` (a still image file or an (H, W, 3|4) array),
            ``"frame_folder"`` (a folder of numbered frames: one clip) or ``"frames"`` (in-memory
            frames).
        name: The file or folder name (``"frames"`` / ``"image"`` for arrays).
        key: Content key (SHA-1 hex): a file's size and first and last MiB; a frame folder's
            frame names, sizes and mtimes; an array's shape and bytes. Copies share it.
        width, height: Pixels of the upright frames (a photo: after EXIF orientation).
        fps: Frames per second the input is read at: a video's container rate, a frame folder's
            or frames' given rate (None for a photo).
        duration: Seconds (a video's header; frames / fps for a folder or array; None: a photo).
        rotation: Display rotation of a video in degrees (0 otherwise; the frames are upright).
        orientation: A photo's EXIF orientation (1: upright; applied already).
        frames: Number of frames of a frame folder or array (0 otherwise).
        bytes: File size (None for folders and arrays).
        path: The file or folder (None for arrays).
        data: What decoding needs next: a video's `VideoInfo`, a photo's `StillImage`, a
            folder's `FrameFolder`, the frames themselves.
        decode_seconds: Time spent decoding while resolving (a photo is decoded here).
    """

    kind: str
    name: str
    key: str
    width: int
    height: int
    fps: float | None = None
    duration: float | None = None
    rotation: int = 0
    orientation: int = 1
    frames: int = 0
    bytes: int | None = None
    path: Path | None = None
    data: Any = field(default=None, repr=False)
    decode_seconds: float = 0.0

    @property
    def result_kind(self) -> str:
        """The kind results report (``video["kind"]``): ``"video"``, ``"image"`` or ``"frames"``."""
        return {"photo": "image", "frame_folder": "frames"}.get(self.kind, self.kind)

    def metadata(self) -> dict[str, Any]:
        """The input's part of a result's ``video`` metadata."""
        if self.kind == "photo":
            still = self.data
            meta: dict[str, Any] = {"name": self.name, "format": still.format}
            meta |= {"width": self.width, "height": self.height, "rotation": 0}
            meta |= {"exif_orientation": self.orientation, "alpha": still.alpha}
            return meta | ({} if self.bytes is None else {"bytes": self.bytes})
        meta = {"name": self.name, "kind": self.result_kind, "duration": self.duration}
        meta |= {"fps": self.fps, "width": self.width, "height": self.height}
        meta["rotation"] = self.rotation
        return meta | ({"frames": self.frames} if self.kind == "frame_folder" else {})


def resolve_input(
    obj: VideoInput,
    *,
    fps: float | None = None,
    frame_folder_fps: float = FRAME_FOLDER_FPS,
    frames_fps: float | None = None,
    limits: VideoLimits | None = None,
) -> MediaInput:
    """What `obj` is, resolved once and checked against `limits` before any frame is decoded.

    Args:
        obj: A path or ``file://`` URI of a video, a still image (JPEG, PNG, WebP, BMP, TIFF,
            recognised by content) or a folder of numbered frames; an (H, W, 3|4) uint8 array
            (a photo); (T, H, W, 3) uint8 RGB frames or a sequence of (H, W, 3) ones; or a
            `MediaInput` (returned as it is).
        fps: The rate of a frame folder or of in-memory frames, when the caller knows it.
        frame_folder_fps: A frame folder's rate when `fps` is not given (the one documented
            default, `AnalysisSettings.frame_folder_fps`: 25).
        frames_fps: In-memory frames' rate when `fps` is not given (the predictor passes the
            model's sampling rate); None: `frame_folder_fps`.
        limits: Checked here: file bytes, pixels, duration (a video's header; decoding checks
            the duration again).

    Raises:
        VideoDecodeError: A missing file, a folder that is not a clip, an undecodable file, bad
            frames (`ImageDecodeError` for a bad image).
        LimitError: The input exceeds `limits`.
        ValueError: A non-positive frame rate. TypeError: not an input at all.
    """
    if isinstance(obj, MediaInput):
        return obj
    lim = limits or VideoLimits()
    if isinstance(obj, (str, os.PathLike)):
        path = _as_path(obj)
        if path.is_dir():
            return _resolve_folder(path, _rate(fps or frame_folder_fps, fps), lim)
        if not path.is_file():
            raise VideoDecodeError(f"file not found: {path.name}")
        if is_image_path(path):
            return _resolve_photo_file(path, lim)
        return _resolve_video(path, lim)
    if isinstance(obj, np.ndarray) and obj.ndim == 3 and obj.dtype == np.uint8:
        if obj.shape[-1] in (3, 4):
            return _resolve_photo_array(obj, lim)
    if isinstance(obj, (np.ndarray, list, tuple)):
        return _resolve_frames(obj, _rate(fps or frames_fps or frame_folder_fps, fps))
    raise TypeError(
        "an input is a path, a file:// URI, a uint8 RGB array or a sequence of frames, "
        f"not {type(obj).__name__}"
    )


def _as_path(obj: str | os.PathLike) -> Path:
    """A path, or the local path of a ``file://`` URI."""
    text = os.fspath(obj)
    if isinstance(text, str) and text.startswith("file://"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise VideoDecodeError(f"only local file:// URIs are read, not {parsed.netloc!r}")
        return Path(url2pathname(parsed.path))
    return Path(text)


def _rate(value: float, given: float | None) -> float:
    rate = float(value)
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"fps must be a positive number, got {given!r}")
    return rate


def _check_bytes(size: int, lim: VideoLimits) -> None:
    if lim.max_bytes is not None and size > lim.max_bytes:
        raise LimitError(
            f"the file is {size / 1e6:.1f} MB; the limit is {lim.max_bytes / 1e6:.1f} MB"
        )


def _file_key(path: Path) -> str:
    """SHA-1 of a file's size and its first and last MiB."""
    h = hashlib.sha1()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()


def _array_key(frames: np.ndarray | Sequence[np.ndarray]) -> str:
    h = hashlib.sha1()
    arr = np.ascontiguousarray(np.asarray(frames))
    h.update(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _resolve_video(path: Path, lim: VideoLimits) -> MediaInput:
    size = path.stat().st_size
    _check_bytes(size, lim)
    key = _file_key(path)
    info = probe_video(path, max_pixels=lim.max_pixels)  # checked before decoding a frame
    if lim.max_pixels is not None and info.width * info.height > lim.max_pixels:
        raise LimitError(
            f"the video is {info.width}x{info.height}; the limit is {lim.max_pixels / 1e6:.1f} megapixels"
        )
    if lim.max_duration is not None and info.duration > lim.max_duration:
        raise LimitError(
            f"the video lasts {info.duration:.0f} s; the limit is {lim.max_duration:.0f} s"
        )
    return MediaInput(
        "video", path.name, key, info.width, info.height, info.fps, info.duration,
        info.rotation, bytes=size, path=path, data=info,
    )  # fmt: skip


def _resolve_folder(path: Path, rate: float, lim: VideoLimits) -> MediaInput:
    folder = frame_folder(path)
    if folder is None:
        raise VideoDecodeError(
            f"'{path.name}' is a folder but not a clip: its files are not all images "
            "numbered with one common pattern (e.g. 00001.jpg, 00002.jpg, ...)"
        )
    h = hashlib.sha1()
    for q in folder.frames:
        st = q.stat()
        h.update(f"{q.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    duration = len(folder) / rate
    if lim.max_duration is not None and duration > lim.max_duration:
        raise LimitError(
            f"the clip lasts {duration:.0f} s ({len(folder)} frames at {rate:g} fps); "
            f"the limit is {lim.max_duration:.0f} s"
        )
    first = read_image(folder.frames[0], max_pixels=lim.max_pixels or None)
    return MediaInput(
        "frame_folder", path.name, h.hexdigest(), first.width, first.height, rate, duration,
        frames=len(folder), path=path, data=folder,
    )  # fmt: skip


def _resolve_photo_file(path: Path, lim: VideoLimits) -> MediaInput:
    t0 = time.perf_counter()
    size = path.stat().st_size
    _check_bytes(size, lim)
    still = read_image(path, **({"max_pixels": lim.max_pixels} if lim.max_pixels else {}))
    return _photo(still, path.name, _file_key(path), lim, t0, size, path)


def _resolve_photo_array(image: np.ndarray, lim: VideoLimits) -> MediaInput:
    t0 = time.perf_counter()
    return _photo(image_from_array(image), "image", _array_key(image), lim, t0)


def _photo(
    still: StillImage,
    name: str,
    key: str,
    lim: VideoLimits,
    t0: float,
    size: int | None = None,
    path: Path | None = None,
) -> MediaInput:
    if lim.max_pixels is not None and still.width * still.height > lim.max_pixels:
        raise LimitError(
            f"the image is {still.width}x{still.height}; "
            f"the limit is {lim.max_pixels / 1e6:.1f} megapixels"
        )
    return MediaInput(
        "photo", name, key, still.width, still.height, orientation=still.orientation,
        bytes=size, path=path, data=still, decode_seconds=time.perf_counter() - t0,
    )  # fmt: skip


def _resolve_frames(frames: np.ndarray | Sequence[np.ndarray], rate: float) -> MediaInput:
    if not isinstance(frames, np.ndarray):
        frames = list(frames)
    if len(frames) == 0:
        raise VideoDecodeError("no frames were given")
    for image in frames if not isinstance(frames, np.ndarray) else frames[:1]:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", None)
        if shape is None or len(shape) != 3 or shape[2] != 3 or dtype != np.uint8:
            raise VideoDecodeError(f"frames must be (H, W, 3) uint8 RGB, got {shape} {dtype}")
    height, width = (int(v) for v in frames[0].shape[:2])
    return MediaInput(
        "frames", "frames", _array_key(frames), width, height, rate, len(frames) / rate,
        frames=len(frames), data=frames,
    )  # fmt: skip


def clip_frames(
    media: MediaInput, cfg: PreprocessConfig, lim: VideoLimits
) -> Iterator[SampledFrame]:
    """The sampled frames of a resolved clip (video, frame folder or frames) at the model's
    sampling rate, up to ``lim.max_sampled_frames`` (a video's duration is checked again while
    decoding: a header can lie about, or lack, it)."""
    max_side = DECODE_MAX_SIDE if cfg.face_detection else None
    assert media.fps is not None  # a clip's rate is always resolved
    if media.kind == "frame_folder":
        return iter_frame_folder(
            media.data, media.fps, cfg.sample_fps, max_frames=lim.max_sampled_frames,
            max_side=max_side, max_pixels=lim.max_pixels or None,
        )  # fmt: skip
    if media.kind == "frames":
        return array_frames(media.data, media.fps, cfg.sample_fps)
    if media.kind != "video" or media.path is None:
        raise ValueError(f"a {media.kind} is not a clip")
    # up to 720p one decoder thread: it decodes beside an encoder that keeps every core busy, and
    # FFmpeg's frame threads would cost more CPU than they save; larger frames (where the decoder
    # is the slower stage) get FFmpeg's threads
    threads = 1 if media.width * media.height <= SINGLE_THREAD_DECODE_PIXELS else 0
    return iter_frames(
        media.path, cfg.sample_fps, max_frames=lim.max_sampled_frames, max_side=max_side,
        max_duration=lim.max_duration, decode_threads=threads,
    )  # fmt: skip


def expected_frames(
    media: MediaInput, sample_fps: float, max_sampled_frames: int | None
) -> int | None:
    """Sampled frames a clip will give, from its duration and frame rate (None if unknown)."""
    duration, fps = float(media.duration or 0.0), float(media.fps or 0.0)
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
