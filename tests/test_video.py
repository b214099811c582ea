"""Tests for emoclip.media: sampling, colour order, resizing, rotation and bad inputs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoclip import media as video
from emoclip.media import (
    SampledFrame,
    VideoDecodeError,
    VideoInfo,
    iter_frames,
    probe as video_probe,
    probe_video,
    read_frames,
    sample_indices,
)
from emoclip.testing.media import blank_frames, set_mp4_rotation, solid_frames, write_video

FPS = 10.0
N_FRAMES = 20
SIZE = (240, 320)  # (H, W)


def _counter_frames(n: int, size: tuple[int, int] = SIZE):
    """Grey frames whose brightness encodes the frame number: 10 + 12 * i."""
    for i in range(n):
        yield np.full((*size, 3), 10 + 12 * i, dtype=np.uint8)


def _frame_number(image: np.ndarray) -> int:
    return round((float(image.mean()) - 10.0) / 12.0)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="module")
def counter_webm(media_dir: Path) -> Path:
    """20 frames at 10 fps (2 s), 320x240, brightness encodes the frame number."""
    return write_video(media_dir / "counter.webm", _counter_frames(N_FRAMES), FPS)


@pytest.fixture(scope="module")
def marker_mp4(media_dir: Path) -> Path:
    """5 frames 320x240 (W x H), black with a red block in the top-left corner."""
    frame = np.zeros((*SIZE, 3), dtype=np.uint8)
    frame[:60, :80] = (255, 0, 0)
    return write_video(media_dir / "marker.mp4", [frame] * 5, FPS)


# ---------------------------------------------------------------------------------------------
# Metadata and sampling
# ---------------------------------------------------------------------------------------------


def test_probe_video_reads_metadata(counter_webm: Path) -> None:
    info = probe_video(counter_webm)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(FPS)
    assert info.frame_count == N_FRAMES
    assert info.duration == pytest.approx(2.0)
    assert info.rotation == 0
    assert info.path == str(counter_webm)


def _expected_sources(sample_fps: float) -> list[int]:
    """Source frames picked by the rule 'first frame at or after each target time'."""
    picks: list[int] = []
    k = 0
    while True:
        target = k / sample_fps
        i = math.ceil(target * FPS - 1e-9)
        if i >= N_FRAMES:
            return picks
        picks.append(i)
        k = math.floor(i / FPS * sample_fps + 1e-9) + 1


@pytest.mark.parametrize(
    ("sample_fps", "expected_count"),
    [(30.0, 20), (10.0, 20), (7.5, 15), (5.0, 10), (2.5, 5), (1.0, 2)],
)
def test_sampling_counts_and_times(
    counter_webm: Path, sample_fps: float, expected_count: int
) -> None:
    frames = list(iter_frames(counter_webm, sample_fps))
    assert len(frames) == expected_count
    sources = [f.source_index for f in frames]
    assert sources == _expected_sources(sample_fps)
    assert [f.index for f in frames] == list(range(expected_count))
    times = np.array([f.time for f in frames])
    np.testing.assert_allclose(times, np.array(sources) / FPS, atol=1e-6)
    assert np.all(np.diff(times) > 0)
    # Each target time k / sample_fps is served by the first frame at or after it.
    for f in frames:
        assert f.time >= f.index / sample_fps - 1e-6 or sample_fps >= FPS


def test_sampled_frames_are_the_right_frames(counter_webm: Path) -> None:
    for f in iter_frames(counter_webm, 5.0):
        assert isinstance(f, SampledFrame)
        assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8
        assert f.image.flags.c_contiguous
        assert _frame_number(f.image) == f.source_index


def test_sample_fps_at_file_rate_with_millisecond_timestamps(media_dir: Path) -> None:
    # WebM stores millisecond timestamps (0, 33, 67, 100 ms ...) for 30 fps: no frame may be
    # lost to rounding when sampling at the full or half rate.
    path = write_video(media_dir / "f30.webm", solid_frames(30, (0, 200, 0), (60, 80)), 30.0)
    assert [f.source_index for f in iter_frames(path, 30.0)] == list(range(30))
    assert [f.source_index for f in iter_frames(path, 15.0)] == list(range(0, 30, 2))
    assert [f.source_index for f in iter_frames(path, 10.0)] == list(range(0, 30, 3))


def test_rgb_order(media_dir: Path) -> None:
    path = write_video(media_dir / "red.webm", solid_frames(3, (255, 0, 0)), FPS)
    frames, _ = read_frames(path)
    mean = frames.reshape(-1, 3).mean(axis=0)
    assert mean[0] > 200, mean  # red channel first
    assert mean[1] < 60 and mean[2] < 60, mean


def test_max_side_downscales_keeping_aspect(counter_webm: Path) -> None:
    frame = next(iter_frames(counter_webm, max_side=160))
    assert frame.image.shape == (120, 160, 3)
    assert next(iter_frames(counter_webm, max_side=1000)).image.shape == (240, 320, 3)
    assert next(iter_frames(counter_webm, max_side=320)).image.shape == (240, 320, 3)


def test_start_end_window(counter_webm: Path) -> None:
    frames = list(iter_frames(counter_webm, 10.0, start=0.5, end=1.0))
    assert [f.source_index for f in frames] == [5, 6, 7, 8, 9]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].time == pytest.approx(0.5)
    frames = list(iter_frames(counter_webm, 5.0, start=0.5, end=1.0))
    assert [f.source_index for f in frames] == [5, 7, 9]
    assert list(iter_frames(counter_webm, start=10.0)) == []  # window past the end


def test_max_frames(counter_webm: Path) -> None:
    frames = list(iter_frames(counter_webm, 10.0, max_frames=3))
    assert [f.source_index for f in frames] == [0, 1, 2]


def test_read_frames(counter_webm: Path) -> None:
    frames, times = read_frames(counter_webm, sample_fps=5.0, max_frames=4, max_side=160)
    assert frames.shape == (4, 120, 160, 3) and frames.dtype == np.uint8
    assert times.dtype == np.float64
    np.testing.assert_allclose(times, [0.0, 0.2, 0.4, 0.6], atol=1e-6)


def test_one_frame_video(media_dir: Path) -> None:
    path = write_video(media_dir / "one.webm", solid_frames(1, (0, 0, 255)), FPS)
    assert probe_video(path).width == 320
    frames = list(iter_frames(path, 7.5))
    assert len(frames) == 1 and frames[0].time == 0.0 and frames[0].source_index == 0


def test_mp4_container(media_dir: Path) -> None:
    path = write_video(media_dir / "blank.mp4", blank_frames(8), FPS)
    frames, times = read_frames(path, sample_fps=FPS)
    assert frames.shape == (8, 240, 320, 3)
    np.testing.assert_allclose(times, np.arange(8) / FPS, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_fps": 0.0},
        {"sample_fps": -1.0},
        {"sample_fps": float("nan")},
        {"max_frames": 0},
        {"start": -1.0},
        {"start": 1.0, "end": 1.0},
        {"max_side": 0},
    ],
)
def test_invalid_arguments(counter_webm: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        iter_frames(counter_webm, **kwargs)


# ---------------------------------------------------------------------------------------------
# Sampling logic on synthetic timestamps (variable frame rate)
# ---------------------------------------------------------------------------------------------


def test_time_sampler_variable_frame_rate() -> None:
    # Irregular timestamps: a burst, a gap, then regular frames.
    times = [0.0, 0.01, 0.02, 0.03, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 1.3, 1.31]
    sampler = video.TimeSampler(sample_fps=4.0, start=0.0, end=None)
    kept = [t for t in times if sampler.keep(t)]
    # Targets 0, .25, .5, .75, 1.0, 1.25: the gap makes 0.25 fall on 0.5, and 1.0 on 1.3.
    assert kept == [0.0, 0.5, 0.75, 1.3]


def test_time_sampler_window_and_take_all() -> None:
    sampler = video.TimeSampler(sample_fps=100.0, start=0.2, end=0.5, take_all=True)
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert [t for t in times if sampler.keep(t)] == [0.2, 0.3, 0.4]
    assert sampler.done(0.5) and not sampler.done(0.49)


class _FakeCapture:
    def __init__(self, msecs: list[float]) -> None:
        self.msecs = iter(msecs)

    def get(self, prop: int) -> float:
        assert prop == cv2.CAP_PROP_POS_MSEC
        return next(self.msecs)


def test_clock_falls_back_to_index_over_fps() -> None:
    clock = video.FrameClock(fps=10.0)
    cap = _FakeCapture([0.0, 100.0, 100.0, float("nan"), -5.0, 600.0])
    times = [clock.time(cap, i) for i in range(6)]
    # Repeated, NaN and negative timestamps become index / fps; the sequence stays increasing.
    np.testing.assert_allclose(times, [0.0, 0.1, 0.2, 0.3, 0.4, 0.6])
    clock = video.FrameClock(fps=0.0)  # unknown frame rate -> FFmpeg's 25 fps guess
    assert clock.time(_FakeCapture([float("nan")]), 5) == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------------
# sample_indices
# ---------------------------------------------------------------------------------------------


def test_sample_indices_examples() -> None:
    np.testing.assert_array_equal(sample_indices(10, 5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(sample_indices(8, 8), np.arange(8))
    np.testing.assert_array_equal(sample_indices(1, 3), [0, 0, 0])
    np.testing.assert_array_equal(sample_indices(3, 6), [0, 0, 1, 1, 2, 2])
    assert sample_indices(5, 0).shape == (0,)
    assert sample_indices(10, 5).dtype == np.int64


def test_sample_indices_properties() -> None:
    for available in range(1, 40):
        for wanted in range(1, 40):
            idx = sample_indices(available, wanted)
            assert idx.shape == (wanted,)
            assert idx.min() >= 0 and idx.max() < available
            assert np.all(np.diff(idx) >= 0)
            if wanted <= available:
                assert np.all(np.diff(idx) > 0)  # no repeats when there is enough
                gaps = np.diff(idx)
                assert wanted == 1 or gaps.max() - gaps.min() <= 1  # evenly spread
                # symmetric: as far from the start as from the end (within one frame)
                assert abs(idx[0] - (available - 1 - idx[-1])) <= 1
            else:
                assert set(idx.tolist()) == set(range(available))  # every frame used
    np.testing.assert_array_equal(sample_indices(7, 5), sample_indices(7, 5))  # deterministic


def test_sample_indices_errors() -> None:
    with pytest.raises(ValueError, match="num_available"):
        sample_indices(0, 4)
    with pytest.raises(ValueError, match="num_wanted"):
        sample_indices(4, -1)


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------


def _png_bytes() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))
    assert ok
    return buf.tobytes()


def _jpeg_bytes() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


BAD_FILES = {
    "empty.mp4": (b"", "empty"),
    "random.mp4": (np.random.default_rng(0).bytes(50_000), "Cannot open"),
    "text.webm": (b"this is not a video\n" * 200, "Cannot open"),
    "image.mp4": (_png_bytes(), "PNG image"),
    "photo.webm": (_jpeg_bytes(), "JPEG image"),
    "head.webm": (None, "Cannot open"),  # first 200 bytes of a real webm
}


@pytest.fixture(params=sorted(BAD_FILES))
def bad_file(
    request: pytest.FixtureRequest, media_dir: Path, counter_webm: Path
) -> tuple[Path, str]:
    name = request.param
    data, reason = BAD_FILES[name]
    if data is None:
        data = counter_webm.read_bytes()[:200]
    path = media_dir / name
    path.write_bytes(data)
    return path, reason


def test_bad_files_raise_video_decode_error(bad_file: tuple[Path, str]) -> None:
    path, reason = bad_file
    with pytest.raises(VideoDecodeError, match=reason) as info:
        probe_video(path)
    assert path.name in str(info.value)
    with pytest.raises(VideoDecodeError) as info:
        list(iter_frames(path))
    assert path.name in str(info.value)
    with pytest.raises(VideoDecodeError):
        read_frames(path)


def test_audio_only_file(media_dir: Path) -> None:
    import wave

    path = media_dir / "audio.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    renamed = path.rename(media_dir / "audio.mp4")
    with pytest.raises(VideoDecodeError, match=r"audio\.mp4"):
        probe_video(renamed)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match=r"not found.*nope\.webm"):
        probe_video(tmp_path / "nope.webm")
    with pytest.raises(VideoDecodeError, match="not found"):
        iter_frames(tmp_path / "nope.webm")  # raised at call time, not on first next()
    with pytest.raises(VideoDecodeError, match="directory"):
        probe_video(tmp_path)
    with pytest.raises(VideoDecodeError, match="directory"):
        read_frames(tmp_path)


def test_video_decode_error_is_a_value_error() -> None:
    assert issubclass(VideoDecodeError, ValueError)


def test_truncated_file_yields_some_frames_or_raises(media_dir: Path, counter_webm: Path) -> None:
    data = counter_webm.read_bytes()
    for fraction in (0.5, 0.25, 0.1):
        path = media_dir / f"truncated_{fraction}.webm"
        path.write_bytes(data[: int(len(data) * fraction)])
        try:
            frames = list(iter_frames(path, 10.0))
        except VideoDecodeError as e:
            assert path.name in str(e)
            continue
        assert 0 < len(frames) < N_FRAMES
        for f in frames:  # whatever decodes is the right content
            assert _frame_number(f.image) == f.source_index
    half = media_dir / "truncated_0.5.webm"
    assert 0 < len(list(iter_frames(half, 10.0))) < N_FRAMES  # this one does decode partly


# ---------------------------------------------------------------------------------------------
# Rotation (real metadata: mp4 tkhd display matrix patched after writing)
# ---------------------------------------------------------------------------------------------

# Where the red top-left block of the stored frame ends up after a clockwise display rotation.
_MARKER_CORNER = {0: "top-left", 90: "top-right", 180: "bottom-right", 270: "bottom-left"}


def _red_corner(image: np.ndarray) -> str:
    h, w = image.shape[:2]
    corners = {
        "top-left": image[5, 5],
        "top-right": image[5, w - 6],
        "bottom-left": image[h - 6, 5],
        "bottom-right": image[h - 6, w - 6],
    }
    red = [name for name, px in corners.items() if px[0] > 150 and px[1] < 80 and px[2] < 80]
    assert len(red) == 1, corners
    return red[0]


@pytest.fixture(params=[0, 90, 180, 270])
def rotated_mp4(
    request: pytest.FixtureRequest, media_dir: Path, marker_mp4: Path
) -> tuple[Path, int]:
    degrees = request.param
    path = media_dir / f"rot{degrees}.mp4"
    path.write_bytes(marker_mp4.read_bytes())
    return set_mp4_rotation(path, degrees), degrees


def test_rotation_metadata_gives_upright_frames(rotated_mp4: tuple[Path, int]) -> None:
    path, degrees = rotated_mp4
    info = probe_video(path)
    assert info.rotation == degrees
    expected_hw = (320, 240) if degrees in (90, 270) else (240, 320)
    assert (info.height, info.width) == expected_hw
    frames = list(iter_frames(path, FPS))
    assert len(frames) == 5
    for f in frames:
        assert f.image.shape[:2] == expected_hw
        assert _red_corner(f.image) == _MARKER_CORNER[degrees]


class _NoAutoRotateCapture:
    """Wraps a real capture whose backend refuses CAP_PROP_ORIENTATION_AUTO (forces cv2.rotate).

    Composition, not subclassing: subclasses of cv2.VideoCapture can crash the interpreter.
    """

    def __init__(self, *args: object) -> None:
        self._cap = _REAL_VIDEO_CAPTURE(*args)

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_ORIENTATION_AUTO and value:
            return False
        return self._cap.set(prop, value)

    def __getattr__(self, name: str) -> object:
        return getattr(self._cap, name)


_REAL_VIDEO_CAPTURE = cv2.VideoCapture


def test_manual_rotation_when_backend_cannot_rotate(
    rotated_mp4: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, degrees = rotated_mp4
    auto = next(iter_frames(path)).image
    monkeypatch.setattr(video_probe.cv2, "VideoCapture", _NoAutoRotateCapture)
    cap, rotation, manual_rotation = video.open_capture(path)
    assert (rotation, manual_rotation) == (degrees, degrees)  # the manual path is taken
    assert cap.get(cv2.CAP_PROP_ORIENTATION_AUTO) == 0  # and OpenCV will not rotate again
    cap.release()
    manual = next(iter_frames(path)).image  # rotated once by cv2.rotate, not twice
    np.testing.assert_array_equal(manual, auto)
    assert probe_video(path).rotation == degrees
    assert _red_corner(manual) == _MARKER_CORNER[degrees]


def test_normalize_rotation() -> None:
    assert [video.normalize_rotation(v) for v in (0, 90, -90, 180, 270, 360, 89.6)] == [
        0,
        90,
        270,
        180,
        270,
        0,
        90,
    ]
    assert video.normalize_rotation(float("nan")) == 0


def test_video_module_is_torch_and_mediapipe_free() -> None:
    code = (
        "import sys, emoclip; before = set(sys.modules); import emoclip.media; "
        "new = set(sys.modules) - before; "
        "bad = [m for m in new if m.split('.')[0] in ('torch', 'mediapipe', 'open_clip')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_decoder_thread_count_changes_nothing_but_cost(counter_webm: Path) -> None:
    auto = list(iter_frames(counter_webm, sample_fps=5.0))
    one = list(iter_frames(counter_webm, sample_fps=5.0, decode_threads=1))
    assert [f.source_index for f in one] == [f.source_index for f in auto] and len(one) > 3
    assert all(np.array_equal(a.image, b.image) for a, b in zip(auto, one))
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="decode_threads"):
            iter_frames(counter_webm, decode_threads=bad)
