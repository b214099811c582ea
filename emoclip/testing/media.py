"""Synthetic media for tests, benchmarks and the screenshot script: small videos and RGB frames with faces.

The face is the astronaut's (Eileen Collins) from ``skimage.data.astronaut()`` (public domain,
bundled with scikit-image, no download). In that 512x512 image the face box is about
(x=177, y=82, w=95, h=95); we paste a 200x200 patch around it, so inside the patch the face sits at
about (52, 52, 95, 95) (`FACE_IN_PATCH`).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import wave
import zlib
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

PATCH_SIZE = 200
# Face box inside the patch: astronaut face (177, 82, 95, 95) minus the patch origin (125, 30).
FACE_IN_PATCH = (52.0, 52.0, 95.0, 95.0)
_PATCH_ORIGIN = (125, 30)  # (x, y) of the patch in astronaut()

_FOURCC = {".webm": "VP80", ".mp4": "mp4v"}


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write RGB frames to a VP8 ``.webm`` (or mp4v ``.mp4``) file with cv2.VideoWriter.

    Args:
        path: Output path; the suffix picks the codec (``.webm`` -> VP80, ``.mp4`` -> mp4v).
        frames: ``(H, W, 3)`` uint8 RGB arrays, all the same size.
        fps: Frame rate written to the container.

    Returns:
        The path written.
    """
    path = Path(path)
    fourcc = _FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise ValueError(f"Unsupported suffix {path.suffix!r}; use one of {sorted(_FOURCC)}")
    writer = None
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(
                    str(path), cv2.VideoWriter.fourcc(*fourcc), float(fps), (width, height)
                )
                if not writer.isOpened():
                    raise RuntimeError(f"cv2.VideoWriter could not open {path} ({fourcc})")
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError("write_video needs at least one frame")
    return path


@lru_cache(maxsize=1)
def face_patch() -> np.ndarray:
    """The 200x200 astronaut face patch, ``(200, 200, 3)`` uint8 RGB (read-only)."""
    from skimage import data

    x, y = _PATCH_ORIGIN
    patch = np.ascontiguousarray(data.astronaut()[y : y + PATCH_SIZE, x : x + PATCH_SIZE])
    patch.flags.writeable = False
    return patch


def noisy_background(size: tuple[int, int], seed: int) -> np.ndarray:
    """Grey background with mild fixed noise, ``(H, W, 3)`` uint8 RGB."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 8.0, size=(*size, 3))
    return np.clip(110.0 + noise, 0, 255).astype(np.uint8)


def face_positions(n: int, size: tuple[int, int] = (480, 640), faces: int = 1) -> np.ndarray:
    """Top-left corners of the face patches in each frame of `moving_face_frames`.

    Returns:
        ``(n, faces, 2)`` int array of ``(x, y)``. Face 0 moves left to right in the upper part of
        the frame; face 1 (if any) moves right to left in the lower part, so they never overlap.
    """
    if faces not in (1, 2):
        raise ValueError("faces must be 1 or 2")
    height, width = size
    if width < PATCH_SIZE + 20 or height < (PATCH_SIZE + 10) * faces:
        raise ValueError(f"frame size {size} too small for {faces} face patch(es)")
    u = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    x_left, x_right = 10, width - PATCH_SIZE - 10
    out = np.zeros((n, faces, 2), dtype=np.int64)
    out[:, 0, 0] = np.round(x_left + u * (x_right - x_left))
    out[:, 0, 1] = 10 if faces == 2 else (height - PATCH_SIZE) // 2
    if faces == 2:
        out[:, 1, 0] = np.round(x_right - u * (x_right - x_left))
        out[:, 1, 1] = height - PATCH_SIZE - 10
    return out


def moving_face_frames(
    n: int, size: tuple[int, int] = (480, 640), faces: int = 1, seed: int = 0
) -> Iterator[np.ndarray]:
    """Frames with the astronaut face patch moving across a noisy grey background.

    Args:
        n: Number of frames.
        size: Frame ``(H, W)``.
        faces: 1 (moves left to right) or 2 (second copy moves right to left, lower down).
        seed: Seed of the background noise.

    Yields:
        ``(H, W, 3)`` uint8 RGB frames. Patch corners are given by `face_positions`.
    """
    background = noisy_background(size, seed)
    patch = face_patch()
    for corners in face_positions(n, size, faces):
        frame = background.copy()
        for x, y in corners:
            frame[y : y + PATCH_SIZE, x : x + PATCH_SIZE] = patch
        yield frame


def blank_frames(n: int, size: tuple[int, int] = (240, 320), seed: int = 0) -> Iterator[np.ndarray]:
    """Frames without a face: a noisy grey background with a slowly moving bright bar.

    Yields:
        ``(H, W, 3)`` uint8 RGB frames.
    """
    background = noisy_background(size, seed)
    width = size[1]
    for i in range(n):
        frame = background.copy()
        x = (i * 7) % max(width - 20, 1)
        frame[:, x : x + 20] = (200, 200, 60)
        yield frame


def solid_frames(
    n: int, rgb: tuple[int, int, int], size: tuple[int, int] = (240, 320)
) -> Iterator[np.ndarray]:
    """``n`` frames of a single colour, ``(H, W, 3)`` uint8 RGB."""
    frame = np.empty((*size, 3), dtype=np.uint8)
    frame[:] = rgb
    for _ in range(n):
        yield frame.copy()


def set_mp4_rotation(path: str | Path, degrees: int) -> Path:
    """Give an mp4 (as written by `write_video`) a display rotation, in place.

    cv2.VideoWriter cannot write rotation metadata, so we patch the transformation matrix of the
    first track header (``tkhd``, version 0), the same place phones store it. FFmpeg reads it back
    as ``CAP_PROP_ORIENTATION_META == degrees`` (clockwise).
    """
    one, w = 1 << 16, 1 << 30  # 16.16 and 2.30 fixed point
    matrices = {
        0: (one, 0, 0, 0, one, 0, 0, 0, w),
        90: (0, one, 0, -one, 0, 0, 0, 0, w),
        180: (-one, 0, 0, 0, -one, 0, 0, 0, w),
        270: (0, -one, 0, one, 0, 0, 0, 0, w),
    }
    path = Path(path)
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    if at < 0 or data[at + 4] != 0:
        raise ValueError(f"{path}: no version-0 tkhd box")
    # After 'tkhd': version+flags(4) times(8) track_id(4) reserved(4) duration(4) reserved(8)
    # layer(2) group(2) volume(2) reserved(2) = 40 bytes, then the 3x3 matrix (36 bytes).
    offset = at + 4 + 40
    data[offset : offset + 36] = struct.pack(">9i", *matrices[degrees])
    path.write_bytes(bytes(data))
    return path


def png_header_only(path: str | Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height but whose pixel data is 64 zero bytes (a bomb,
    or a zero-sized image): for the checks that must trip before any pixel is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path = Path(path)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def write_wav(path: str | Path) -> Path:
    """One second of a 8 kHz sine tone as a WAV file (audio, not video, whatever the name says)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.sin(np.arange(8000) / 5.0) * 3000).astype(np.int16).tobytes())
    return Path(path)


# Benchmark clips: a face moving across a noisy background, written as H.264 when ffmpeg is there.


def face_patch_sized(side: int) -> np.ndarray:
    """`face_patch` resized to ``(side, side, 3)`` uint8 RGB; a drawn face without scikit-image."""
    try:
        patch = face_patch()
    except ImportError:
        patch = np.full((200, 200, 3), 90, np.uint8)
        cv2.ellipse(patch, (100, 100), (55, 70), 0, 0, 360, (224, 180, 150), -1)
        for x in (78, 122):
            cv2.circle(patch, (x, 85), 7, (40, 30, 30), -1)
        cv2.ellipse(patch, (100, 130), (22, 10), 0, 0, 180, (150, 60, 60), 3)
    return patch if side == 200 else cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)


def face_frames(
    n: int, size: tuple[int, int], distinct: int | None = None, seed: int = 0
) -> Iterator[np.ndarray]:
    """`n` RGB frames (H, W) of a face moving across a noisy background; `distinct` positions cycle."""
    h, w = size
    side = max(32, min(h, w) * 5 // 12)
    patch = face_patch_sized(side)
    rng = np.random.default_rng(seed)
    background = np.clip(110 + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    steps = distinct or n
    xs = np.round(np.linspace(0, w - side, max(steps, 2))).astype(int)
    ys = np.round(
        (h - side) / 2 + (h - side) / 4 * np.sin(np.linspace(0, np.pi, max(steps, 2)))
    ).astype(int)
    cached: dict[int, np.ndarray] = {}
    for i in range(n):
        k = (i * steps // n) if distinct is None else (i % steps)
        if k not in cached:
            frame = background.copy()
            frame[ys[k] : ys[k] + side, xs[k] : xs[k] + side] = patch
            if distinct is None:
                yield frame
                continue
            cached[k] = frame
        yield cached[k]


def write_clip(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float) -> Path:
    """H.264 .mp4 through the ffmpeg CLI when present (what phones and editors make), else mp4v via OpenCV."""
    h, w = size
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    if shutil.which("ffmpeg"):
        cmd = [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{w}x{h}",
            "-r",
            f"{fps:g}",
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(tmp),
        ]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        assert proc.stdin is not None  # stdin=PIPE
        try:
            for frame in frames:
                proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        finally:
            proc.stdin.close()
            if proc.wait() != 0:
                raise RuntimeError(f"ffmpeg failed writing {path}")
    else:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"cv2.VideoWriter could not open {tmp}")
        try:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
        finally:
            writer.release()
    tmp.replace(path)
    return path
