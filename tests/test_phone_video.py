"""Phone videos (issue #10 §3): rotation metadata, HEVC in .mov, audio as the first stream,
variable frame rate and 60/120 fps capture, on files generated with the ffmpeg command line.

The face is the astronaut's from scikit-image (a real photograph, no download), moved across the
frames as a known function of time, so face detection on the decoded frames is real and its
position tells whether a frame is upright and whether its timestamp is right.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emoclip.faces import FaceDetector
from emoclip.inference.predictor import EmotionPredictor
from emoclip.media import iter_frames, probe_video
from emoclip.testing.media import (
    FACE_IN_PATCH,
    PATCH_SIZE,
    face_patch,
    noisy_background,
    set_mp4_rotation,
)

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command line is not installed")

SIZE = (360, 640)  # (H, W) of landscape frames
DURATION = 2.0


def _has_encoder(name: str) -> bool:
    out = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True)
    return any(line.split()[1:2] == [name] for line in out.stdout.splitlines() if line.strip())


def _face_x(t: float, width: int = SIZE[1]) -> int:
    """Left edge of the face patch at time `t`: left to right over `DURATION` seconds."""
    return int(round(10 + (width - PATCH_SIZE - 20) * min(max(t / DURATION, 0.0), 1.0)))


def _frame(t: float, size: tuple[int, int] = SIZE) -> np.ndarray:
    """One (H, W, 3) uint8 RGB frame at time `t`: the face patch at (`_face_x(t)`, centred)."""
    frame = noisy_background(size, 0)
    x, y = _face_x(t, size[1]), (size[0] - PATCH_SIZE) // 2
    frame[y : y + PATCH_SIZE, x : x + PATCH_SIZE] = face_patch()
    return frame


def _encode(
    path: Path, frames: list[np.ndarray], fps: float, *out_args: str, pre: tuple[str, ...] = ()
) -> Path:
    """Pipe raw RGB frames through the ffmpeg command line into `path`."""
    h, w = frames[0].shape[:2]
    cmd = [
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        *pre,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-r",
        str(fps),
        "-i",
        "-",
        *out_args,
        str(path),
    ]
    done = subprocess.run(
        cmd,
        input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return path


H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


def _streams(path: Path) -> list[str]:
    probe = shutil.which("ffprobe")
    if probe is None:
        pytest.skip("ffprobe is not installed")
    out = subprocess.run(
        [
            probe,
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [f"{s['codec_type']}:{s['codec_name']}" for s in json.loads(out.stdout)["streams"]]


def _face_centres(
    path: Path, sample_fps: float = 7.5
) -> list[tuple[float, float, float, np.ndarray]]:
    """(time, face centre x, face centre y, upright frame) of each sampled frame with one face."""
    out = []
    with FaceDetector() as detector:
        for frame in iter_frames(path, sample_fps):
            boxes = detector.detect(frame.image)
            assert len(boxes) == 1, f"{len(boxes)} faces at {frame.time:.3f} s"
            cx, cy = boxes[0].center
            out.append((frame.time, cx, cy, frame.image))
    return out


def _expected_centre(t: float, size: tuple[int, int] = SIZE) -> tuple[float, float]:
    fx, fy, fw, fh = FACE_IN_PATCH
    return _face_x(t, size[1]) + fx + fw / 2, (size[0] - PATCH_SIZE) // 2 + fy + fh / 2


def _assert_faces_follow_time(
    path: Path, n_expected: int, fps: float, sample_fps: float = 7.5
) -> None:
    found = _face_centres(path, sample_fps)
    assert len(found) == n_expected
    for k, (t, cx, cy, _) in enumerate(found):
        assert abs(t - k / sample_fps) <= 1.0 / fps + 1e-3, (
            k,
            t,
        )  # the first frame at/after k/7.5 s
        ex, ey = _expected_centre(t)
        assert abs(cx - ex) < 12 and abs(cy - ey) < 12, (t, cx, ex, cy, ey)


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = EmotionPredictor(tiny_model, batch_size=8)
    yield p
    p.close()


# ----------------------------------------------------------------------------- rotation


def _portrait_file(
    path: Path, codec: tuple[str, ...], rotation: int
) -> tuple[Path, list[np.ndarray]]:
    """A phone-style portrait clip: upright (640, 360) frames stored rotated into landscape,
    with a display rotation of `rotation` degrees clockwise in the track header."""
    upright = [_frame(i / 30, size=(640, 360)) for i in range(30)]
    turns = {90: 1, 270: 3}[rotation]  # np.rot90 turns counter-clockwise; the display turns back
    _encode(path, [np.rot90(f, turns) for f in upright], 30, *codec)
    set_mp4_rotation(path, rotation)
    return path, upright


def _check_upright(path: Path, upright: list[np.ndarray], rotation: int, predictor) -> None:
    info = probe_video(path)
    assert (info.rotation, info.width, info.height) == (rotation, 360, 640)
    found = _face_centres(path)
    assert len(found) == 8  # 1 s at 7.5 fps
    for t, cx, cy, image in found:
        assert image.shape == (640, 360, 3)
        source = upright[round(t * 30)]
        diff = np.abs(image.astype(int) - source).mean()  # the picture as it was filmed ...
        turned = np.abs(image.astype(int) - np.rot90(source, 2)).mean()  # ... not upside down
        assert diff < 8 and diff < turned / 2, (diff, turned)
        ex, ey = _expected_centre(t, size=(640, 360))
        assert abs(cx - ex) < 12 and abs(cy - ey) < 12
    pred = predictor.predict(path)
    assert pred.video["rotation"] == rotation and (pred.video["width"], pred.video["height"]) == (
        360,
        640,
    )
    assert pred.faces.frames_with_face == pred.faces.sampled_frames > 0 and len(pred.tracks) == 1
    assert not any("face" in w for w in pred.warnings)


def test_rotation_metadata_is_honoured(tmp_path, predictor):
    path, upright = _portrait_file(tmp_path / "portrait.mp4", H264, 90)
    _check_upright(path, upright, 90, predictor)


@pytest.mark.skipif(
    FFMPEG is None or not _has_encoder("libx265"),
    reason="this ffmpeg has no HEVC encoder (libx265)",
)
def test_hevc_in_mov_with_rotation(tmp_path, predictor):
    codec = (
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error",
        "-tag:v",
        "hvc1",
        "-pix_fmt",
        "yuv420p",
    )
    path, upright = _portrait_file(tmp_path / "IMG_0001.MOV", codec, 270)
    assert _streams(path) == ["video:hevc"]
    _check_upright(path, upright, 270, predictor)


# ----------------------------------------------------------------------------- streams and timing


def test_audio_as_the_first_stream(tmp_path, predictor):
    frames = [_frame(i / 30) for i in range(int(DURATION * 30))]
    path = _encode(
        tmp_path / "audio-first.mp4",
        frames,
        30,
        "-map",
        "0:a",
        "-map",
        "1:v",
        *H264,
        "-c:a",
        "aac",
        "-shortest",
        pre=("-f", "lavfi", "-i", f"sine=frequency=440:duration={DURATION}"),
    )
    assert _streams(path) == ["audio:aac", "video:h264"]
    info = probe_video(path)
    assert (info.width, info.height, info.fps) == (640, 360, 30.0)
    _assert_faces_follow_time(path, 15, 30)
    pred = predictor.predict(path)
    assert pred.faces.frames_with_face == pred.faces.sampled_frames and len(pred.tracks) == 1


def test_variable_frame_rate_is_sampled_by_real_time(tmp_path):
    # 1 s at 30 fps, then 1 s at 10 fps: frame n is shown at t(n); the face is drawn where it is at t(n)
    times = [n / 30 for n in range(30)] + [1 + n / 10 for n in range(10)]
    frames = [_frame(t) for t in times]
    path = _encode(
        tmp_path / "vfr.mp4",
        frames,
        30,
        "-vf",
        "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'",
        "-fps_mode",
        "vfr",
        *H264,
    )
    # with times taken as index / fps the second half would be sampled at the wrong places
    _assert_faces_follow_time(path, 15, 10)


@pytest.mark.slow
@pytest.mark.parametrize("fps", [60, 120])
def test_high_frame_rate_capture(tmp_path, fps):
    frames = [_frame(i / fps) for i in range(int(DURATION * fps))]
    path = _encode(tmp_path / f"capture{fps}.mp4", frames, fps, *H264)
    info = probe_video(path)
    assert info.fps == fps and info.frame_count == DURATION * fps
    _assert_faces_follow_time(path, 15, fps)  # 7.5 sampled fps whatever the capture rate
