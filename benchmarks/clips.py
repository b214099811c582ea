"""Generated media, cached outside git (``$EMOCLIP_BENCH_CACHE``, default ~/.cache/emoclip-bench):
clips of a moving face, a long looped clip (P7), a group photo with EXIF orientation (P9) and
many short distinct clips (P10)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emoclip.testing.media import face_frames, face_patch_sized, write_clip

GENERATOR_VERSION = 1  # bump when the generated clips change (cache key)


def cache_dir(arg: str | None) -> Path:
    path = Path(
        arg or os.environ.get("EMOCLIP_BENCH_CACHE") or Path.home() / ".cache" / "emoclip-bench"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_clip(folder: Path, seconds: float, size: tuple[int, int], fps: float = 30.0) -> Path:
    """A cached generated clip with a face moving across it (every frame distinct)."""
    h, w = size
    path = folder / f"face_{w}x{h}_{fps:g}fps_{seconds:g}s_v{GENERATOR_VERSION}.mp4"
    if not path.exists():
        n = max(1, round(seconds * fps))
        write_clip(path, face_frames(n, size), size, fps)
    return path


def make_long_clip(folder: Path, seconds: float, size: tuple[int, int], fps: float = 30.0) -> Path:
    """A long cached clip made efficiently: a 2 s segment of 8 distinct frames, looped (stream copy)."""
    h, w = size
    path = folder / f"long_{w}x{h}_{fps:g}fps_{seconds:g}s_v{GENERATOR_VERSION}.mp4"
    if path.exists():
        return path
    segment_s = min(2.0, seconds)
    n = max(1, round(segment_s * fps))
    if shutil.which("ffmpeg") and seconds > segment_s:
        seg = write_clip(
            folder / f"seg_{w}x{h}_{fps:g}fps_v{GENERATOR_VERSION}.mp4",
            face_frames(n, size, distinct=8),
            size,
            fps,
        )
        loops = int(np.ceil(seconds / segment_s)) - 1
        tmp = path.with_name(path.stem + ".part.mp4")
        subprocess.run(
            [
                "ffmpeg",
                "-y",
                "-loglevel",
                "error",
                "-stream_loop",
                str(loops),
                "-i",
                str(seg),
                "-t",
                f"{seconds:g}",
                "-c",
                "copy",
                str(tmp),
            ],
            check=True,
        )
        tmp.replace(path)
        seg.unlink()
        return path
    total = max(1, round(seconds * fps))
    return write_clip(
        path, (f for _, f in zip(range(total), _cycle(face_frames(n, size, distinct=8)))), size, fps
    )


def _cycle(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    saved = list(frames)
    while True:
        yield from saved


def make_group_photo(folder: Path, size: tuple[int, int] = (1080, 1920)) -> Path:
    """A cached 1080p JPEG group photo of five real faces (the astronaut's, five sizes), stored
    sideways with EXIF orientation 6 as a phone would, so reading it includes the EXIF turn."""
    import cv2
    from PIL import Image

    h, w = size
    path = folder / f"group5_{w}x{h}_exif6_v{GENERATOR_VERSION}.jpg"
    if path.exists():
        return path
    canvas = np.clip(110 + np.random.default_rng(0).normal(0, 12, (h, w, 3)), 0, 255).astype(
        np.uint8
    )
    x = 40 * w // 1920
    for side in (s * w // 1920 for s in (420, 340, 280, 230, 190)):
        y = (h - side) // 2 + (side // 7 if side % 2 else -side // 9)
        canvas[y : y + side, x : x + side] = face_patch_sized(side)
        x += side + 60 * w // 1920
    stored = cv2.rotate(canvas, cv2.ROTATE_90_COUNTERCLOCKWISE)  # EXIF 6 turns it back clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    tmp = path.with_name(path.stem + ".part.jpg")
    Image.fromarray(stored).save(tmp, quality=90, exif=exif.tobytes())
    tmp.replace(path)
    return path


def short_clips(
    folder: Path,
    n: int,
    seconds: float = 2.0,
    size: tuple[int, int] = (240, 320),
    fps: float = 15.0,
) -> list[Path]:
    """`n` cached short clips, each different (another background seed), so no cache can help."""
    h, w = size
    sub = folder / f"short_{w}x{h}_{fps:g}fps_{seconds:g}s_v{GENERATOR_VERSION}"
    sub.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        path = sub / f"clip{i:04d}.mp4"
        if not path.exists():
            write_clip(path, face_frames(max(1, round(seconds * fps)), size, seed=i), size, fps)
        clips.append(path)
    return clips
