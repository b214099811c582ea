"""Hostile inputs through every library and CLI entry point (issue #6, library and CLI half).

Every bad video goes through (a) `emoclip.video` (`probe_video` + `iter_frames`), (b)
`EmotionPredictor.predict` with the tiny model and (c) ``emoclip predict`` (`emoclip.cli.main`).
Each either succeeds sensibly or fails with a typed error (`VideoDecodeError`, `LimitError`,
`NoFaceError`, `ClassSetError`) whose message says what was wrong; the CLI exits with 1 and
prints ``emoclip: <file>: <problem>``. Never another exception type, a traceback or a crash.

Then class sets (hostile names and descriptions are kept as text and scored), property-based
tests of text handling (tokenizer, text-embedding cache, JSON/CSV export), hostile embedding
files for the latent explorer, and pickles that carry code.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import emoclip
from emoclip import video as video_module
from emoclip.classes import ClassSet, ClassSetError
from emoclip.cli import main
from emoclip.inference.predictor import EmotionPredictor, LimitError, NoFaceError, VideoLimits
from emoclip.results import FaceSummary, Prediction, Timeline, TrackPrediction
from emoclip.testing.media import (
    blank_frames,
    moving_face_frames,
    set_mp4_rotation,
    write_video,
    write_wav,
)
from emoclip.video import VideoDecodeError, iter_frames, probe_video
from emoclip.weights import CheckpointError, read_state_dict, save_checkpoint

pytest.importorskip("mediapipe")

FACE_SIZE = (224, 240)  # (H, W): the smallest frame the 200x200 face patch fits in
LIMITS = VideoLimits(max_bytes=20_000_000, max_duration=120.0, max_pixels=3840 * 2160)
CLI_LIMITS = ["--max-mb", "20", "--max-seconds", "120", "--max-megapixels", "8.3"]
TYPED = (VideoDecodeError, LimitError, NoFaceError, ClassSetError)


# ---------------------------------------------------------------------------------------------
# Media generators
# ---------------------------------------------------------------------------------------------


def _face(path: Path, n: int = 8, fps: float = 8.0) -> Path:
    return write_video(path, moving_face_frames(n, size=FACE_SIZE), fps)


def _writer(path: Path, fourcc: str, size: tuple[int, int], n: int, fps: float) -> Path:
    """`n` grey frames of `size` (H, W) written with any OpenCV fourcc (MJPG writes 1x1)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (size[1], size[0]))
    assert writer.isOpened(), f"cannot write {path.name} with {fourcc}"
    frame = np.full((*size, 3), 100, np.uint8)
    for i in range(n):
        frame[0, 0] = i % 256  # not all frames identical
        writer.write(frame)
    writer.release()
    return path


def _zero_frames(path: Path, fourcc: str) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 8.0, (64, 64))
    writer.release()
    if not path.exists():  # some muxers write nothing at all: an empty file is the same case
        path.write_bytes(b"")
    return path


def _truncated(path: Path, fraction: float) -> Path:
    source = _face(path.with_name("full-" + path.name), n=24)
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _bit_flips(path: Path) -> Path:
    source = _face(path.with_name("clean-" + path.name), n=16)
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(7)
    for i in rng.integers(200, len(data), 300):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path



def _image(path: Path, ext: str) -> Path:
    ok, buf = cv2.imencode(ext, np.full((32, 32, 3), 90, np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _gif(path: Path) -> Path:
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
    return path


def _webm_duration_offset(data: bytes) -> tuple[int, int]:
    """(offset, size) of the float of the Matroska Segment Info Duration element (ID 0x4489)."""
    at = data.find(b"\x44\x89")
    assert at > 0 and data[at + 2] in (0x84, 0x88), "no Duration element"
    return at + 3, data[at + 2] & 0x0F


def _long_webm(path: Path, header_seconds: float | None) -> Path:
    """10 minutes at 1 fps, 32x32, whose header claims `header_seconds` (None: no duration)."""
    write_video(path, blank_frames(600, size=(32, 32)), fps=1.0)
    data = bytearray(path.read_bytes())
    offset, size = _webm_duration_offset(data)
    real_ms = struct.unpack(">d" if size == 8 else ">f", data[offset : offset + size])[0]
    assert abs(real_ms - 600_000) < 2_000  # the real duration, in ms
    if header_seconds is None:  # overwrite the whole element with an EBML Void of equal size
        data[offset - 3 : offset + size] = bytes([0xEC, 0x80 | (size + 1)]) + b"\x00" * (size + 1)
    else:
        fmt = ">d" if size == 8 else ">f"
        data[offset : offset + size] = struct.pack(fmt, header_seconds * 1000)
    path.write_bytes(bytes(data))
    return path


_MP4_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def set_mp4_frame_durations(path: Path, durations: list[int]) -> Path:
    """Make an mp4 from `write_video` variable-frame-rate: frame i lasts ``durations[i]`` ticks.

    Rewrites the sample-to-time table (``stts``) and the sizes of its parent boxes; the moov box
    is the file's last, so no media offset moves. Keep the sum of `durations` (the edit list
    still says how long the track plays).
    """
    data = bytearray(path.read_bytes())
    parents: list[int] = []

    def find(start: int, end: int) -> tuple[int, int]:
        i = start
        while i < end:
            size, kind = struct.unpack(">I4s", data[i : i + 8])
            if kind in _MP4_CONTAINERS:
                parents.append(i)
                return find(i + 8, i + size)
            if kind == b"stts":
                return i, size
            i += size
        raise ValueError(f"{path.name}: no stts box")

    at, old_size = find(0, len(data))
    runs: list[list[int]] = []
    for d in durations:
        if runs and runs[-1][1] == d:
            runs[-1][0] += 1
        else:
            runs.append([1, d])
    body = struct.pack(">II", 0, len(runs)) + b"".join(struct.pack(">II", n, d) for n, d in runs)
    box = struct.pack(">I4s", 8 + len(body), b"stts") + body
    for parent in parents:
        (size,) = struct.unpack(">I", data[parent : parent + 4])
        data[parent : parent + 4] = struct.pack(">I", size + len(box) - old_size)
    data[at : at + old_size] = box
    path.write_bytes(bytes(data))
    return path


def _vfr(path: Path) -> Path:
    """40 frames in 4 s: the first 2 s at 4 fps (8 frames), the last 2 s at 16 fps (32)."""
    _face(path, n=40, fps=10.0)  # timescale 10240 ticks/s (1024 per frame)
    return set_mp4_frame_durations(path, [2560] * 8 + [640] * 32)


def _rotated(path: Path) -> Path:
    return set_mp4_rotation(_face(path), 90)


def _copy_of_face(path: Path) -> Path:
    source = _face(path.parent / "face-source.webm")
    path.write_bytes(source.read_bytes())
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _dangling(path: Path) -> Path:
    path.symlink_to(path.parent / "nowhere.mp4")
    return path


@dataclass(frozen=True)
class Case:
    """A generated input and what every entry point must make of it.

    Attributes:
        build: Writes the file at the path it is given, returns the path.
        expect: "ok" (a sensible result), "any" (a result or a typed error: damaged files whose
            outcome depends on the codec), or the error type.
        match: Text the error message must contain (case-insensitive).
        decoder: What the video decoder alone (`emoclip.video`) makes of it when that differs
            (a still image: the predictor and CLI analyse it, the decoder refuses it), with the
            text its message must contain.
    """

    build: Callable[[Path], Path]
    expect: str | type = "ok"
    match: str = ""
    decoder: tuple[str | type, str] | None = None


VIDEO_CASES: dict[str, Case] = {
    # damaged
    "truncated_half.webm": Case(lambda p: _truncated(p, 0.5)),
    "truncated_head.webm": Case(lambda p: _truncated(p, 0.02), VideoDecodeError, "no decodable"),
    "truncated_half.mp4": Case(lambda p: _truncated(p, 0.5), VideoDecodeError, "cannot open"),
    "bit_flips.webm": Case(_bit_flips, "any"),
    "bit_flips.mp4": Case(_bit_flips, "any"),
    "random_bytes.mp4": Case(lambda p: _bytes(p, np.random.default_rng(0).bytes(20_000)),
                             VideoDecodeError, "cannot open"),
    # empty and almost empty
    "empty.mp4": Case(lambda p: _bytes(p, b""), VideoDecodeError, "empty"),
    "zero_frames.mp4": Case(lambda p: _zero_frames(p, "mp4v"), VideoDecodeError),
    "zero_frames.webm": Case(lambda p: _zero_frames(p, "VP80"), VideoDecodeError),
    "zero_frames.avi": Case(lambda p: _zero_frames(p, "MJPG"), VideoDecodeError),
    "one_frame.webm": Case(lambda p: _face(p, n=1)),
    "one_frame.mp4": Case(lambda p: _face(p, n=1)),
    # tiny and huge frames
    "tiny_8x8.webm": Case(lambda p: _writer(p, "VP80", (8, 8), 6, 4.0)),
    "tiny_8x8.mp4": Case(lambda p: _writer(p, "mp4v", (8, 8), 6, 4.0)),
    "tiny_1x1.avi": Case(lambda p: _writer(p, "MJPG", (1, 1), 6, 4.0)),
    "tiny_2x2.webm": Case(lambda p: _writer(p, "VP80", (2, 2), 6, 4.0), "any"),  # VP8 can't
    "huge_8000x8000.mp4": Case(lambda p: _writer(p, "mp4v", (8000, 8000), 2, 4.0), LimitError,
                               "megapixels"),
    # long, lying about it, absurd frame rates, variable frame rate, rotation
    "long_10min.mp4": Case(lambda p: _writer(p, "mp4v", (32, 32), 600, 1.0), LimitError, "lasts"),
    "long_header_says_1s.webm": Case(lambda p: _long_webm(p, 1.0), LimitError, "lasts more than"),
    "long_no_duration.webm": Case(lambda p: _long_webm(p, None), LimitError, "lasts more than"),
    "fps_1000.avi": Case(lambda p: _writer(p, "MJPG", (16, 16), 3000, 1000.0)),
    "variable_fps.mp4": Case(_vfr),
    "rotated_90.mp4": Case(_rotated),
    # other things with video extensions
    # still images are analysed (issue #10) whatever their name; the video decoder refuses them
    "png_image.mp4": Case(lambda p: _image(p, ".png"), decoder=(VideoDecodeError, "PNG image")),
    "jpeg_image.webm": Case(lambda p: _image(p, ".jpg"), decoder=(VideoDecodeError, "JPEG image")),
    "animated_gif.mp4": Case(_gif, VideoDecodeError, "GIF image"),
    "text.mp4": Case(lambda p: _bytes(p, b"not a video\n" * 50), VideoDecodeError, "cannot open"),
    "html.webm": Case(lambda p: _bytes(p, b"<html><script>alert(1)</script></html>"),
                      VideoDecodeError, "cannot open"),
    "audio_only.mp4": Case(write_wav, VideoDecodeError, "cannot open"),
    "audio_only.webm": Case(write_wav, VideoDecodeError, "cannot open"),
    # no face anywhere: the centre crop is analysed, with a warning
    "no_face.webm": Case(lambda p: write_video(p, blank_frames(8, size=(120, 160)), 8.0)),
    # not files
    "directory.mp4": Case(_directory, VideoDecodeError),
    "missing.mp4": Case(lambda p: p, VideoDecodeError, "not found"),
    "dangling_link.mp4": Case(_dangling, VideoDecodeError, "not found"),
    # file names that are not paths to trust (the file is a good video)
    "-dash.webm": Case(_copy_of_face),
    "colon:name.webm": Case(_copy_of_face),
    "spaces $(id) ; rm -rf x.webm": Case(_copy_of_face),
    "ünïcødé 表情 😀.webm": Case(_copy_of_face),
    "\x1b[31mansi\x07.webm": Case(_copy_of_face),
    "new\nline\r.webm": Case(_copy_of_face),
    "<img src=x onerror=alert(1)>.webm": Case(_copy_of_face),
}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Build a case's file on first use (each case in its own folder), then reuse it."""
    root = tmp_path_factory.mktemp("hostile")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            folder = root / f"case{len(built)}"
            folder.mkdir()
            built[name] = VIDEO_CASES[name].build(folder / name)
        return built[name]

    return get


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = EmotionPredictor(tiny_model, batch_size=8, limits=LIMITS)
    yield p
    p.close()


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return save_checkpoint(tiny_model.state_dict(), tiny_model.config, path)


def _shown(path: Path) -> str:
    """How the CLI prints a path: control characters escaped."""
    text = str(path)
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _check_error(exc: BaseException, case: Case) -> None:
    assert isinstance(exc, TYPED), f"{type(exc).__name__}: {exc}"
    if case.expect not in ("ok", "any"):
        assert isinstance(exc, case.expect), f"{type(exc).__name__}: {exc}"
    assert str(exc).strip(), "an error without a message"
    assert case.match.lower() in str(exc).lower(), str(exc)


# ---------------------------------------------------------------------------------------------
# The battery: cases x entry points
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VIDEO_CASES))
def test_video_module(name, media):
    """(a) probe_video + iter_frames, with the battery's limits."""
    case, path = VIDEO_CASES[name], media(name)
    if case.decoder is not None:
        case = Case(case.build, *case.decoder)
    try:
        info = probe_video(path, max_pixels=LIMITS.max_pixels)
        frames = list(iter_frames(path, 4.0, max_duration=LIMITS.max_duration))
    except Exception as exc:  # noqa: BLE001 - the point of the test
        assert case.expect != "ok", f"{type(exc).__name__}: {exc}"
        _check_error(exc, case)
        if isinstance(exc, VideoDecodeError):
            assert path.name in str(exc)
        return
    assert case.expect in ("ok", "any"), f"expected {case.expect}, got a result"
    assert info.width >= 1 and info.height >= 1 and frames
    times = [f.time for f in frames]
    assert times == sorted(times)
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.ndim == 3 and f.image.shape[2] == 3
        assert f.image.shape[:2] == (info.height, info.width)


@pytest.mark.parametrize("name", sorted(VIDEO_CASES))
def test_predictor(name, media, predictor):
    """(b) EmotionPredictor.predict with the tiny model and the battery's limits."""
    case, path = VIDEO_CASES[name], media(name)
    try:
        pred = predictor.predict(path)
    except Exception as exc:  # noqa: BLE001
        assert case.expect != "ok", f"{type(exc).__name__}: {exc}"
        _check_error(exc, case)
        return
    assert case.expect in ("ok", "any"), f"expected {case.expect}, got a prediction"
    probs = np.array(list(pred.probabilities.values()))
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-4
    assert pred.top in pred.classes and pred.faces.sampled_frames >= 1
    if len(pred.timeline):
        assert np.allclose(pred.timeline.probabilities.sum(1), 1, atol=1e-4)
    assert abs(np.linalg.norm(pred.embedding) - 1) < 1e-4
    assert pred.video["name"] == path.name
    json.loads(pred.to_json())
    if name == "no_face.webm":
        assert any("no face" in w for w in pred.warnings)


@pytest.mark.parametrize("name", sorted(VIDEO_CASES))
def test_cli(name, media, weights, capsys):
    """(c) emoclip predict FILE --model tiny.safetensors --quiet (+ limits)."""
    case, path = VIDEO_CASES[name], media(name)
    code = main(["predict", str(path), "--model", str(weights), "--quiet", *CLI_LIMITS])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "\x1b" not in out + err and "\x07" not in out + err
    shown = _shown(path)
    if code == 0:
        assert case.expect in ("ok", "any"), f"expected {case.expect}; stderr: {err}"
        assert out.startswith(f"{shown}: ") and "(" in out
        return
    assert code == 1 and case.expect != "ok", err
    if name == "directory.mp4":  # a folder is searched for videos, images and frame folders: none here
        assert f"no videos, images or frame folders found in {shown}" in err
        return
    line = next(line for line in err.splitlines() if line.startswith("emoclip: "))
    assert line.startswith(f"emoclip: {shown}: "), err
    assert case.match.lower() in line.lower(), err
    assert "unexpected" not in line, err


# ---------------------------------------------------------------------------------------------
# The image battery (issue #10): still images and frame folders through read_image, predict, CLI
# ---------------------------------------------------------------------------------------------


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _pil(path: Path, image: np.ndarray | None = None, mode: str | None = None, **kwargs) -> Path:
    from PIL import Image

    im = Image.fromarray(_astronaut() if image is None else image)
    (im.convert(mode) if mode else im).save(path, **kwargs)
    return path


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height in its header and holds 64 bytes of pixel data."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _flip(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(3)
    for i in rng.integers(len(data) // 10, len(data), 40):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _exif_garbage(path: Path) -> Path:
    """A JPEG with an EXIF orientation out of range (99): read as it is stored."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 99
    return _pil(path, exif=exif.tobytes())


def _rgba_transparent(path: Path) -> Path:
    return _pil(path, np.zeros((64, 64, 4), np.uint8))


def _frame_folder(path: Path, corrupt: int | None = None) -> Path:
    path.mkdir()
    for i, frame in enumerate(moving_face_frames(6, size=FACE_SIZE)):
        target = path / f"{i + 1:05d}.jpg"
        if i == corrupt:
            target.write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
        else:
            _pil(target, frame)
    return path


def _unrelated_folder(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("x")
    (path / "data.bin").write_bytes(b"\0" * 10)
    return path


IMAGE_CASES: dict[str, Case] = {
    # the formats, with the real face photo
    "face.jpg": Case(lambda p: _pil(p, quality=90)),
    "face.png": Case(_pil),
    "face.webp": Case(_pil),
    "face.bmp": Case(_pil),
    "face.tiff": Case(_pil),
    "grey.png": Case(lambda p: _pil(p, mode="L")),
    "cmyk.jpg": Case(lambda p: _pil(p, mode="CMYK")),
    "palette.png": Case(lambda p: _pil(p, mode="P")),
    "fully_transparent.png": Case(_rgba_transparent),
    "exif_orientation_99.jpg": Case(_exif_garbage),
    "tiny_1x1.png": Case(lambda p: _pil(p, np.zeros((1, 1, 3), np.uint8))),
    "strip_1x4000.png": Case(lambda p: _pil(p, np.zeros((1, 4000, 3), np.uint8))),
    # damaged and empty
    "empty.jpg": Case(lambda p: _bytes(p, b""), VideoDecodeError, "empty"),
    "truncated.jpg": Case(lambda p: _cut(_pil(p), 0.05), VideoDecodeError, "truncated.jpg"),
    "signature_only.png": Case(lambda p: _bytes(p, b"\x89PNG\r\n\x1a\n"), VideoDecodeError, "signature_only.png"),
    "bit_flips.jpg": Case(lambda p: _flip(_pil(p)), "any"),
    "random_bytes.webp": Case(lambda p: _bytes(p, np.random.default_rng(1).bytes(5000)), VideoDecodeError,
                              "random_bytes.webp"),
    "zero_size.png": Case(lambda p: _png_header(p, 0, 0), VideoDecodeError, "zero_size.png"),
    # huge (the header is checked before any pixel is decoded)
    "wide_30000x20.png": Case(lambda p: _png_header(p, 30000, 20), LimitError, "30000x20"),
    "bomb_30000x30000.png": Case(lambda p: _png_header(p, 30000, 30000), LimitError, "30000x30000"),
    # other things with image extensions
    "text.jpg": Case(lambda p: _bytes(p, b"not an image\n" * 30), VideoDecodeError, "text.jpg"),
    "html.png": Case(lambda p: _bytes(p, b"<html><script>alert(1)</script></html>"), VideoDecodeError, "html.png"),
    "gif.png": Case(_gif, VideoDecodeError, "GIF image"),
    # a video named .jpg: read as the image its name says, which it is not
    "video.jpg": Case(lambda p: _face(p.with_suffix(".webm")).rename(p), VideoDecodeError, "video.jpg"),
    # hostile names
    "\x1b[31mansi\x07.png": Case(_pil),
    "<img src=x onerror=alert(1)>.jpg": Case(_pil),
    # folders of frames
    "frames": Case(_frame_folder),
    "frames_one_corrupt": Case(lambda p: _frame_folder(p, corrupt=0), VideoDecodeError, "00001.jpg"),
    "unrelated_files": Case(_unrelated_folder, VideoDecodeError, "not a clip"),
}


@pytest.fixture(scope="module")
def image_media(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    root = tmp_path_factory.mktemp("hostile_images")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            folder = root / f"case{sorted(IMAGE_CASES).index(name)}"
            folder.mkdir()
            built[name] = IMAGE_CASES[name].build(folder / name)
        return built[name]

    return get


@pytest.mark.parametrize("name", sorted(n for n in IMAGE_CASES if not n.startswith(("frames", "unrel"))))
def test_image_reader(name, image_media):
    """(a) emoclip.images.read_image with the battery's pixel limit."""
    from emoclip.images import read_image

    case, path = IMAGE_CASES[name], image_media(name)
    try:
        still = read_image(path, max_pixels=LIMITS.max_pixels)
    except Exception as exc:  # noqa: BLE001
        assert case.expect != "ok", f"{type(exc).__name__}: {exc}"
        _check_error(exc, case)
        return
    assert case.expect in ("ok", "any")
    assert still.image.dtype == np.uint8 and still.image.shape == (still.height, still.width, 3)


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_image_predictor(name, image_media, predictor):
    """(b) EmotionPredictor.predict on images and frame folders."""
    case, path = IMAGE_CASES[name], image_media(name)
    try:
        pred = predictor.predict(path)
    except Exception as exc:  # noqa: BLE001
        assert case.expect != "ok", f"{type(exc).__name__}: {exc}"
        _check_error(exc, case)
        return
    assert case.expect in ("ok", "any"), f"expected {case.expect}, got a prediction"
    probs = np.array(list(pred.probabilities.values()))
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-4
    assert abs(np.linalg.norm(pred.embedding) - 1) < 1e-4 and pred.video["name"] == path.name
    json.loads(pred.to_json())
    if pred.video["kind"] == "image":
        assert len(pred.timeline) == 0 and all(t.box is not None for t in pred.tracks)
        if name.startswith("face") or "ansi" in name or "img" in name:
            assert len(pred.tracks) == 1  # the astronaut
    elif name == "frames":
        assert pred.video["kind"] == "frames" and len(pred.timeline) >= 1


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_image_cli(name, image_media, weights, capsys):
    """(c) emoclip predict IMAGE-OR-FOLDER --model tiny.safetensors --quiet (+ limits)."""
    case, path = IMAGE_CASES[name], image_media(name)
    code = main(["predict", str(path), "--model", str(weights), "--quiet", *CLI_LIMITS])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "\x1b" not in out + err and "\x07" not in out + err
    shown = _shown(path)
    if code == 0:
        assert case.expect in ("ok", "any"), f"expected {case.expect}; stderr: {err}"
        assert out.startswith(f"{shown}: ") and "(" in out
        return
    assert code == 1 and case.expect != "ok", err
    if name == "unrelated_files":  # a folder that is neither a clip nor holds media
        assert f"no videos, images or frame folders found in {shown}" in err
        return
    line = next(line for line in err.splitlines() if line.startswith("emoclip: "))
    assert line.startswith(f"emoclip: {shown}: "), err
    assert case.match.lower() in line.lower(), err
    assert "unexpected" not in line, err


# ---------------------------------------------------------------------------------------------
# What the battery alone does not show
# ---------------------------------------------------------------------------------------------


def test_no_face_with_skip_fallback_is_a_typed_error(media, tiny_model, weights, capsys):
    path = media("no_face.webm")
    with pytest.raises(NoFaceError, match="no face"):
        EmotionPredictor(tiny_model, face_fallback="skip").predict(path)
    code = main(["predict", str(path), "--model", str(weights), "--quiet", "--fallback", "skip"])
    assert code == 1 and f"emoclip: {path}: no face" in capsys.readouterr().err


def test_max_pixels_trips_before_any_frame_is_decoded(media, monkeypatch, tiny_model):
    path = media("huge_8000x8000.mp4")
    calls: list[str] = []
    real = cv2.VideoCapture

    class Counting:  # a wrapper: subclasses of cv2.VideoCapture crash when collected
        def __init__(self, *args) -> None:
            self._cap = real(*args)

        def __getattr__(self, name):
            if name in ("read", "grab", "retrieve"):
                calls.append(name)
            return getattr(self._cap, name)

    monkeypatch.setattr(video_module.cv2, "VideoCapture", Counting)
    with pytest.raises(LimitError, match="8000x8000"):
        probe_video(path, max_pixels=8_000_000)
    with pytest.raises(LimitError, match="8000x8000"):
        EmotionPredictor(tiny_model, limits=VideoLimits(max_pixels=8_000_000)).predict(path)
    assert calls == []
    info = probe_video(path)  # without a limit it is a valid video
    assert (info.width, info.height) == (8000, 8000) and calls == ["read"]


def test_max_pixels_check_costs_no_frame_memory(media):
    """Peak RSS of refusing the 8000x8000 file vs decoding its first frame (~700 MB)."""
    path = media("huge_8000x8000.mp4")
    code = (
        "import sys\n"
        "from emoclip.video import probe_video, LimitError\n"
        "def hwm():\n"
        "    status = open('/proc/self/status').read().splitlines()\n"
        "    return int(next(l for l in status if l.startswith('VmHWM')).split()[1])\n"
        "before = hwm()\n"
        "try:\n"
        "    probe_video(sys.argv[1], max_pixels=int(sys.argv[2]) or None)\n"
        "except LimitError:\n"
        "    pass\n"
        "print((hwm() - before) // 1024)\n"
    )
    grew = {}
    for limit in (8_000_000, 0):
        out = subprocess.run([sys.executable, "-c", code, str(path), str(limit)],
                             capture_output=True, text=True, timeout=120, check=True)
        grew[limit] = int(out.stdout.split()[-1])
    # Refusing costs what opening the container does; decoding one frame holds at least its
    # YUV and BGR copies (96 + 192 MB).
    assert grew[8_000_000] < 150 and grew[0] > 250, grew  # MB


def test_lying_header_passes_the_upfront_check_and_is_stopped_while_decoding(media):
    path = media("long_header_says_1s.webm")
    info = probe_video(path)
    assert info.duration <= 1.5  # the header's claim
    frames = iter_frames(path, 1.0, max_duration=30)
    with pytest.raises(LimitError, match="lasts more than 30 s"):
        for _ in frames:
            pass


def test_decoded_frame_limit(media, monkeypatch):
    path = media("fps_1000.avi")
    assert probe_video(path).fps == 1000.0
    with pytest.raises(LimitError, match="more than 500 frames"):
        list(iter_frames(path, 4.0, max_decoded_frames=500))
    # With a duration limit the frame limit defaults to 1000 frames per allowed second; a file
    # denser than the highest sane frame rate is stopped by it.
    monkeypatch.setattr(video_module, "_MAX_SANE_FPS", 100.0)
    with pytest.raises(LimitError, match="more than 300 frames"):
        list(iter_frames(path, 4.0, max_duration=2.0))
    with pytest.raises(ValueError, match="max_decoded_frames"):
        iter_frames(path, max_decoded_frames=0)
    with pytest.raises(ValueError, match="max_duration"):
        iter_frames(path, max_duration=float("nan"))
    unlimited = len(list(iter_frames(path, 4.0)))
    assert len(list(iter_frames(path, 4.0, max_duration=float("inf")))) == unlimited


def test_variable_frame_rate_is_sampled_by_time(media, predictor):
    path = media("variable_fps.mp4")
    frames = list(iter_frames(path, 4.0))
    times = np.array([f.time for f in frames])
    assert len(frames) == 16 and np.allclose(np.diff(times), 0.25, atol=0.01)
    sources = [f.source_index for f in frames]
    assert sources[:9] == list(range(9)) and sources[9:12] == [12, 16, 20]  # 4 fps, then 16 fps
    pred = predictor.predict(path)
    assert pred.faces.sampled_frames == 16 and abs(pred.video["duration"] - 4.0) < 0.3


def test_rotated_video_is_upright(media, predictor):
    path = media("rotated_90.mp4")
    info = probe_video(path)
    assert info.rotation == 90 and (info.width, info.height) == (FACE_SIZE[0], FACE_SIZE[1])
    pred = predictor.predict(path)
    assert (pred.video["width"], pred.video["height"]) == (FACE_SIZE[0], FACE_SIZE[1])


def test_copies_of_a_video_report_their_own_names(media, predictor, tmp_path):
    """The encoding cache is keyed by content: a copy under another name is a cache hit, but
    its prediction (and encoding) must carry its own file name."""
    first, second = tmp_path / "first.webm", tmp_path / "second <b>copy.webm"
    for path in (first, second):
        path.write_bytes(media("one_frame.webm").read_bytes())
    assert predictor.predict(first).video["name"] == "first.webm"
    assert predictor.predict(second).video["name"] == second.name
    assert predictor.encode(second).video["name"] == second.name
    assert predictor.encode(first).video["name"] == "first.webm"
    assert predictor.encode(first).key == predictor.encode(second).key


def test_long_video_without_limits_is_analysed(media, tiny_model):
    path = media("long_10min.mp4")  # 600 frames of 32x32
    pred = EmotionPredictor(tiny_model, batch_size=64).predict(path)
    assert pred.faces.sampled_frames == 600 and len(pred.timeline) >= 590
    assert len(pred.embedding) == tiny_model.embed_dim


def test_cli_keeps_going_after_bad_files(media, weights, tmp_path, capsys):
    names = ("empty.mp4", "audio_only.webm", "random_bytes.mp4", "huge_8000x8000.mp4")
    bad = [media(n) for n in names]
    good = media("one_frame.webm")
    code = main(["predict", *map(str, bad), str(good), "--model", str(weights), "--quiet",
                 *CLI_LIMITS, "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv")])
    out, err = capsys.readouterr()
    assert code == 1
    assert [line.split(": ")[0] for line in err.splitlines() if line.startswith("emoclip: ")] == [
        f"emoclip: {p}".split(": ")[0] for p in bad]
    for p in bad:
        assert f"emoclip: {p}: " in err
    assert out.startswith(f"{good}: ")
    assert json.loads((tmp_path / "o.json").read_text())["video"]["name"] == "one_frame.webm"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "o.csv").read_text(), newline="")))
    assert rows and {r["video"] for r in rows} == {"one_frame.webm"}


def test_cli_unexpected_errors_are_reported_per_file(media, weights, monkeypatch, capsys):
    """An exception that is not one of ours (a library bug, say) ends neither the batch nor
    the process with a traceback."""
    good = media("one_frame.webm")
    original = EmotionPredictor.predict

    def flaky(self, video, *args, **kwargs):
        if Path(video).name == "bit_flips.webm":
            raise RuntimeError("decoder exploded")
        return original(self, video, *args, **kwargs)

    monkeypatch.setattr(EmotionPredictor, "predict", flaky)
    code = main(["predict", str(media("bit_flips.webm")), str(good), "--model", str(weights),
                 "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1 and "unexpected RuntimeError: decoder exploded" in err
    assert "Traceback" not in err and out.startswith(f"{good}: ")


def test_cli_unreadable_output_path_is_a_message(media, weights, tmp_path, capsys):
    code = main(["predict", str(media("one_frame.webm")), "--model", str(weights), "--quiet",
                 "--json", str(tmp_path)])  # a directory
    err = capsys.readouterr().err
    assert code == 1 and "emoclip: error: " in err and "Traceback" not in err


@pytest.mark.parametrize("flag, value", [("--max-seconds", "0"), ("--max-megapixels", "-1"),
                                         ("--max-mb", "lots"), ("--max-seconds", "inf")])
def test_cli_limit_flags_are_validated(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "x.webm", flag, value])
    assert info.value.code == 2 and flag in capsys.readouterr().err


def test_cli_limits_trip_before_decoding(media, weights, capsys):
    path = media("one_frame.webm")
    code = main(["predict", str(path), "--model", str(weights), "--quiet", "--max-mb", "0.001"])
    assert code == 1 and "MB" in capsys.readouterr().err
    code = main(["predict", str(path), "--model", str(weights), "--quiet",
                 "--max-megapixels", "0.01"])
    assert code == 1 and "megapixels" in capsys.readouterr().err


def test_file_names_that_are_not_utf8_in_a_subprocess(media, weights, tmp_path):
    """A non-UTF-8 file name used to crash OpenCV (segfault); a subprocess keeps this suite alive
    if it ever does again. Also: real stdout encoding, JSON/CSV output, no temporary files."""
    folder = tmp_path / "names"
    folder.mkdir()
    data = media("one_frame.webm").read_bytes()
    names = [b"latin1-\xe9t\xe9.webm", b"\xff\xfe.webm", b"ansi-\x1b[2J.webm"]
    for raw in names:
        with open(os.path.join(os.fsencode(folder), raw), "wb") as fh:
            fh.write(data)
    temp = tmp_path / "tmpdir"
    temp.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(temp), "PYTHONIOENCODING": "utf-8",
           "LC_ALL": "C.UTF-8"}
    out = subprocess.run(
        [sys.executable, "-m", "emoclip", "predict", str(folder), "--model", str(weights),
         "--quiet", "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv")],
        capture_output=True, env=env, timeout=300, cwd=tmp_path)
    stdout, stderr = out.stdout.decode("utf-8"), out.stderr.decode("utf-8", "replace")
    assert out.returncode == 0, stderr
    assert "\x1b" not in stdout + stderr and "Traceback" not in stderr
    assert "\\udcff\\udcfe.webm" in stdout and "latin1-\\udce9t\\udce9.webm" in stdout
    assert "ansi-\\x1b[2J.webm" in stdout
    results = json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))
    assert len(results) == 3
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in results)
    assert {r["video"]["name"] for r in results} == {os.fsdecode(raw) for raw in names}
    text = (tmp_path / "o.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len({r["video"] for r in rows}) == 3
    assert list(temp.iterdir()) == []  # no temporary files left behind
    # The library in-process: the file names reach FFmpeg through /proc/self/fd.
    code = (
        "import os, sys\n"
        "from emoclip.video import probe_video, iter_frames\n"
        "for name in os.listdir(sys.argv[1]):\n"
        "    path = os.path.join(sys.argv[1], name)\n"
        "    assert probe_video(path).width == 240 and len(list(iter_frames(path))) == 1\n"
        "    assert os.listdir('/proc/self/fd') == os.listdir('/proc/self/fd')\n"
        "print('ok', len(os.listdir('/proc/self/fd')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith(b"ok"), out.stderr


# ---------------------------------------------------------------------------------------------
# Class sets
# ---------------------------------------------------------------------------------------------

CLASS_TEXTS: dict[str, tuple[str, str, str]] = {  # name: (text, "ok" | "error", message part)
    "empty": ("", "error", "empty"),
    "whitespace": ("  \n\t\n", "error", ""),
    "null": ("null", "error", "empty"),
    "no classes": ("classes: {}", "error", "no classes"),
    "duplicate key": ("classes:\n  joy: a\n  joy: b\n", "error", "duplicate key 'joy'"),
    "duplicate ignoring case": ("classes:\n  Joy: a\n  joy: b\n", "error", "same name"),
    "duplicate composed/decomposed": ('classes:\n  "caf\\u00e9": a\n  "cafe\\u0301": b\n', "error",
                                      "same name"),
    "duplicate JSON key": ('{"classes": {"a": "x", "a": "y"}}', "error", "duplicate key"),
    "empty description": ("classes:\n  joy: ''\n  sad: b\n", "error", "is empty"),
    "missing description": ("classes:\n  joy:\n  sad: b\n", "error", "no descriptions"),
    "over-long description": ("classes:\n  joy: " + "a" * 1001 + "\n  sad: b\n", "error",
                              "1001 characters"),
    "over-long name": ("classes:\n  " + "n" * 65 + ": a\n  sad: b\n", "error", "65 characters"),
    "too many classes": ("classes:\n" + "".join(f"  c{i}: d{i}\n" for i in range(65)), "error",
                         "too many classes"),
    "too many descriptions": ("classes:\n  joy: [" + ", ".join(["a"] * 17) + "]\n", "error",
                              "too many descriptions"),
    "file too large": ("joy: " + "x" * 300_000, "error", "limit"),
    "control character": ('classes:\n  "a\\u001b[31m": x\n  b: y\n', "error", "U+001B"),
    "lone surrogate": ('{"classes": {"\\ud800": "x", "b": "y"}}', "error", "U+D800"),
    "tab indentation": ("classes:\n\tjoy: a\n", "error", "line 2"),
    "unclosed bracket": ("classes: [a, b", "error", "YAML error"),
    "bad JSON": ('{"classes": {"a": "b" "c": "d"}}', "error", "JSON syntax error"),
    "binary": ("\x00\x01\x02", "error", "U+0000"),
    "deep nesting": ("[" * 5000, "error", "nested too deeply"),
    "alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                   "d: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
                   "error", ""),
    "python tag": ("!!python/object/apply:os.system ['echo pwned']", "error", "constructor"),
    "merge key": ("base: &b {x: 1}\nclasses:\n  <<: *b\n", "error", "merge keys"),
    "date key": ("classes:\n  2024-01-01: a\n  b: c\n", "error", "date"),
    "number key": ("classes:\n  1: a\n  2: b\n", "error", "must be text"),
    "huge number": ("classes:\n  a: " + "9" * 5000, "error", "number"),
    # valid, and kept verbatim
    "64 classes": ("classes:\n" + "".join(f"  c{i}: d{i}\n" for i in range(64)), "ok", ""),
    "CJK": ("classes:\n  喜び: 笑顔の人\n  悲しみ: 泣いている顔\n  怒り: 怒った顔\n", "ok", ""),
    "emoji": ("classes:\n  😀: 😀😀😀\n  😢: a crying face 😢\n  🏳️‍🌈: 👨‍👩‍👧‍👦\n", "ok", ""),
    "RTL and zero-width": ('classes:\n  "غضب": وجه غاضب\n  "a\\u202eb": x\n  "\\u200b": y\n',
                           "ok", ""),
    "HTML and script": ("classes:\n  '<script>alert(1)</script>': '<img src=x onerror=alert(1)>'\n"
                        "  '</td><b>bold</b>': '<iframe src=javascript:alert(1)>'\n", "ok", ""),
    "Markdown": ("classes:\n  '**bold** [x](javascript:alert(1))': '# heading\\n\\n| a | b |'\n"
                 "  '`code`': '![img](http://x/y.png)'\n", "ok", ""),
    "CSV and formula injection": ('classes:\n  "=cmd|\' /C calc\'!A0": "a, \\"quoted\\", b"\n'
                                  '  "+1,2\\n3": "x"\n', "ok", ""),
    "long description": ("classes:\n  joy: " + "word " * 199 + "\n  sad: b\n", "ok", ""),
    "same descriptions": ("classes:\n  a: same\n  b: same\n", "ok", ""),
    "one class": ("classes:\n  joy: a smile\n", "ok", ""),
    "JSON": ('{"classes": {"joy": ["a", "b"], "sad": "c"},'
             ' "compounds": {"bitter": ["joy", "sad"]}}', "ok", ""),
    "flat authors' format": ("anger: a frown\nhappiness: a smile\n", "ok", ""),
}


@pytest.fixture(scope="module")
def encoding(predictor):
    frames = np.full((6, 64, 64, 3), 128, np.uint8)
    frames[:, 20:40] = 200
    return predictor.encode(frames, fps=4.0)


@pytest.mark.parametrize("name", sorted(CLASS_TEXTS))
def test_class_set_text(name, tmp_path):
    text, expect, part = CLASS_TEXTS[name]
    for load in (lambda: ClassSet.parse(text), lambda: _load_file(tmp_path, text)):
        if expect == "error":
            with pytest.raises(ClassSetError) as info:
                load()
            assert part.lower() in str(info.value).lower()
        else:
            classes = load()
            assert classes.names and all(isinstance(n, str) and n for n in classes.names)


def _load_file(folder: Path, text: str) -> ClassSet:
    path = folder / ("classes.json" if text.lstrip().startswith("{") else "classes.yaml")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return ClassSet.load(path)


@pytest.mark.parametrize("name", sorted(n for n, (_, e, _) in CLASS_TEXTS.items() if e == "ok"))
def test_hostile_class_names_are_scored_and_exported_verbatim(name, predictor, encoding):
    classes = ClassSet.parse(CLASS_TEXTS[name][0])
    pred = predictor.score(encoding, classes)
    assert pred.classes == classes.names  # nothing escaped, stripped or rewritten
    probs = np.array([pred.probabilities[n] for n in classes.names])
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-4
    data = json.loads(pred.to_json())
    assert list(data["probabilities"]) == classes.names and data["top"] in classes.names
    rows = list(csv.DictReader(io.StringIO(pred.to_csv(), newline="")))
    assert [r["class"] for r in rows if r["scope"] == "clip"] == classes.names
    if name == "long description":
        assert any("77" in w for w in pred.warnings)


def test_cli_class_files(media, weights, tmp_path, capsys):
    good = media("one_frame.webm")
    for name in ("bad JSON", "tab indentation", "duplicate key", "too many classes", "binary"):
        text = CLASS_TEXTS[name][0]
        path = tmp_path / ("c.json" if text.lstrip().startswith("{") else "c.yaml")
        path.write_text(text, encoding="utf-8")
        code = main(["predict", str(good), "--model", str(weights), "--quiet",
                     "--classes", str(path)])
        err = capsys.readouterr().err
        assert code == 1 and f"emoclip: error: {path.name}" in err, err
        assert CLASS_TEXTS[name][2].lower() in err.lower() and "Traceback" not in err
    for name in ("HTML and script", "emoji", "CSV and formula injection"):
        path = tmp_path / "c.yaml"
        path.write_text(CLASS_TEXTS[name][0], encoding="utf-8")
        out_json = tmp_path / "o.json"
        code = main(["predict", str(good), "--model", str(weights), "--quiet",
                     "--classes", str(path), "--json", str(out_json)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert list(json.loads(out_json.read_text())["probabilities"]) == ClassSet.load(path).names
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("classes:\n  joie: un sourire \xe9clatant\n".encode("latin-1"))
    code = main(["predict", str(good), "--model", str(weights), "--quiet",
                 "--classes", str(latin1)])
    err = capsys.readouterr().err
    assert code == 1 and "'latin1.yaml' is not UTF-8 text" in err, err


# ---------------------------------------------------------------------------------------------
# Property-based: text handling
# ---------------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
LONG_TEXT = st.text(min_size=1000, max_size=3000)


@PROPERTY
@given(st.text() | LONG_TEXT)
def test_property_tokenizer_never_crashes(text):
    tokens = emoclip.tokenize(text)
    assert tokens.shape == (1, 77) and tokens.dtype == torch.int64
    assert int(tokens[0, 0]) != 0  # <start>
    n = emoclip.tokenizer.count_tokens(text)
    assert n >= 2
    end = (tokens[0] == 49407).nonzero()  # <end>: the text's last position
    assert len(end) == 1 and int(end[0, 0]) + 1 == min(n, 77)
    assert emoclip.tokenizer.is_truncated(text) == (n > 77)


@PROPERTY
@given(st.lists(st.text() | LONG_TEXT, min_size=1, max_size=6))
def test_property_text_embedding_cache(tiny_model, texts):
    from emoclip.zeroshot import TextEmbeddingCache

    cache = TextEmbeddingCache(tiny_model, max_entries=4)
    emb = cache.embed(texts)
    assert emb.shape == (len(texts), tiny_model.embed_dim)
    assert torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=-1), torch.ones(len(texts)), atol=1e-4)
    again = cache.embed(texts[::-1])
    assert torch.allclose(again, emb.flip(0), atol=1e-5)
    assert all(t in cache for t in texts) and cache.encoded == len(set(texts))
    cache.clear()
    assert len(cache) == 0 and texts[0] not in cache
    cache.embed(texts[:1])
    assert cache.encoded == len(set(texts)) + 1  # re-encoded after clear


# A description the class-set rules accept: no control characters but newline and tab.
DESCRIPTION = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t"), min_size=1,
    max_size=1000,
).filter(lambda t: t.strip())
NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=64).filter(
    lambda t: t.strip())


@PROPERTY
@given(st.lists(st.tuples(NAME, st.lists(DESCRIPTION, min_size=1, max_size=3)), min_size=1,
                max_size=5))
def test_property_any_valid_class_set_scores(predictor, encoding, entries):
    try:
        classes = ClassSet.from_dict({"classes": {n: d for n, d in entries}})
    except ClassSetError:  # e.g. names equal ignoring case
        assume(False)
    pred = predictor.score(encoding, classes)
    probs = np.array(list(pred.probabilities.values()))
    assert list(pred.probabilities) == classes.names
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-4
    assert ClassSet.parse(classes.to_yaml()) == classes
    assert ClassSet.parse(classes.to_json()) == classes


def _prediction(names: list[str], video_name: str) -> Prediction:
    rng = np.random.default_rng(len(names))
    probs = rng.dirichlet(np.ones(len(names)))
    windows = rng.dirichlet(np.ones(len(names)), size=2).astype(np.float32)
    return Prediction(
        model="m", classes=list(names), probabilities=dict(zip(names, probs.tolist())),
        timeline=Timeline(np.array([0.0, 1.0]), np.array([2.0, 3.0]), windows),
        tracks=[TrackPrediction(0, 3, 0.0, 2.5, dict(zip(names, probs.tolist())), True)],
        embedding=np.ones(4, np.float32) / 2,
        faces=FaceSummary(4, 3, 1, [1.5], 1, "center"),
        timings={"total": 0.1}, video={"name": video_name, "duration": 3.0}, warnings=["w"],
    )


@PROPERTY
@given(st.lists(st.text(min_size=1), min_size=1, max_size=6, unique=True), st.text())
def test_property_prediction_exports_round_trip(tmp_path_factory, names, video_name):
    pred = _prediction(names, video_name)
    data = json.loads(pred.to_json())
    assert data["classes"] == names and list(data["probabilities"]) == names
    assert data["video"]["name"] == video_name and data["top"] == pred.top
    assert [list(w["probabilities"]) for w in data["timeline"]] == [names, names]
    text = pred.to_csv()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 4 * len(names)  # clip, two windows, one track
    assert [r["class"] for r in rows] == names * 4
    assert {r["video"] for r in rows} == {video_name}
    for r in rows[: len(names)]:
        assert float(r["probability"]) == pytest.approx(pred.probabilities[r["class"]], abs=1e-6)
    folder = tmp_path_factory.mktemp("export")
    pred.to_csv(folder / "p.csv")
    pred.to_json(folder / "p.json")
    with open(folder / "p.csv", newline="", encoding="utf-8") as fh:
        assert list(csv.DictReader(fh)) == rows
    assert json.loads((folder / "p.json").read_text(encoding="utf-8")) == data


def test_exports_with_a_file_name_that_is_not_utf8(tmp_path):
    """Such names reach Python as lone surrogates, which UTF-8 cannot encode: the files are
    written anyway (the surrogate as the text ``\\udcff``, a JSON escape in the JSON file)."""
    name = os.fsdecode(b"clip-\xff.webm")
    pred = _prediction(["joy", "sad"], name)
    pred.to_json(tmp_path / "p.json")
    pred.to_csv(tmp_path / "p.csv")
    assert json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))["video"]["name"] == name
    assert "clip-\\udcff.webm" in (tmp_path / "p.csv").read_text(encoding="utf-8")


@PROPERTY
@given(st.binary(max_size=400), st.sampled_from([".yaml", ".yml", ".json"]))
def test_property_class_set_files_of_any_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"set{suffix}"
    path.write_bytes(data)
    try:
        classes = ClassSet.load(path)
    except ClassSetError as exc:
        assert str(exc)
        return
    assert classes.names


# ---------------------------------------------------------------------------------------------
# Latent explorer: hostile embedding files
# ---------------------------------------------------------------------------------------------


def _npy_with_header(shape: str, body: bytes = b"\x00" * 64) -> bytes:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape
    header += " " * (118 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


def _npz(members: dict[str, bytes], compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _np_bytes(save: Callable[[io.BytesIO], None]) -> bytes:
    buf = io.BytesIO()
    save(buf)
    return buf.getvalue()


EMBEDDING_FILES: dict[str, bytes | None] = {  # None: a directory
    "empty.npz": b"", "empty.npy": b"", "empty.csv": b"", "empty.json": b"",
    "object.npy": _np_bytes(
        lambda b: np.save(b, np.array([{"a": 1}], dtype=object), allow_pickle=True)),
    "object.npz": _np_bytes(lambda b: np.savez(b, embeddings=np.array([[1.0]], dtype=object))),
    "pickle.npy": pickle.dumps({"embeddings": [1.0]}),
    "huge-shape.npy": _npy_with_header("(100000000, 100000000)"),
    "huge-shape.npz": _npz({"embeddings.npy": _npy_with_header("(100000000, 100000000)")}),
    "4GB-shape.npz": _npz({"embeddings.npy": _npy_with_header("(1000000, 1000)")}),
    "truncated.npy": _npy_with_header("(10, 4)", b"\x00" * 16),
    "zip-bomb.npz": _npz({"embeddings.npy": b"\x00" * 60_000_000}, compress=True),
    "zip-slip.npz": _npz({"../../evil.npy": _np_bytes(lambda b: np.save(b, np.ones((2, 2))))}),
    "not-zip.npz": b"hello",
    "ids-not-strings.npz": _np_bytes(
        lambda b: np.savez(b, embeddings=np.ones((2, 4)), ids=np.arange(2))),
    "nan.npy": _np_bytes(lambda b: np.save(b, np.array([[np.nan, 1.0]]))),
    "complex.npy": _np_bytes(lambda b: np.save(b, np.ones((2, 2), complex))),
    "3d.npy": _np_bytes(lambda b: np.save(b, np.ones((2, 2, 2)))),
    "scalar.npy": _np_bytes(lambda b: np.save(b, np.float32(3))),
    "zero-dim.npy": _np_bytes(lambda b: np.save(b, np.zeros((3, 0)))),
    "records.npy": _np_bytes(lambda b: np.save(b, np.zeros(3, dtype=[("a", "f4")]))),
    "ragged.csv": b"a,1,2\nb,1\n", "nan.csv": b"a,nan,1\nb,inf,2\n", "text.csv": b"a,b,c\nd,e,f\n",
    "latin1.csv": "\xe9t\xe9,1,2\n".encode("latin-1"),
    "big-field.csv": b'"' + b"x" * 200_000 + b'",1\n',
    "deep.json": b"[" * 100_000, "big-int.json": b'[{"embedding": [1' + b"0" * 5000 + b"]}]",
    "nan.json": b'[{"embedding": [NaN, 1]}]', "object.json": b'{"a": 1}',
    "nested.json": b'[{"embedding": [[1, 2]]}]',
    "id-number.json": b'[{"embedding": [1, 2], "id": 5}]',
    "latin1.json": b'[{"embedding": [1, 2], "id": "\xe9"}]', "unsupported.txt": b"1,2\n",
    "folder.npz": None,
}
EMBEDDING_FILES_THAT_LOAD = {  # name: labels, kept as text
    "html.csv": (b"<script>alert(1)</script>,1,2\n**md**,3,4\n=cmd|' /C calc'!A0,5,6\n",
                 ["<script>alert(1)</script>", "**md**", "=cmd|' /C calc'!A0"]),
    "emoji.json": ('[{"embedding": [1, 2], "id": "😀", "label": "喜び"}]'.encode(), ["喜び"]),
}


@pytest.mark.parametrize("name", sorted(EMBEDDING_FILES))
def test_hostile_embedding_files(name, tmp_path):
    from emoclip.explore import load_embeddings

    path = tmp_path / name
    data = EMBEDDING_FILES[name]
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        load_embeddings(path)
    assert type(info.value) is ValueError and str(info.value).startswith(f"{name}: ")
    assert not (tmp_path.parent / "evil.npy").exists()


@pytest.mark.parametrize("name", sorted(EMBEDDING_FILES_THAT_LOAD))
def test_embedding_files_with_hostile_labels(name, tmp_path):
    from emoclip.explore import load_embeddings

    data, labels = EMBEDDING_FILES_THAT_LOAD[name]
    path = tmp_path / name
    path.write_bytes(data)
    assert [p.label for p in load_embeddings(path)] == labels


@PROPERTY
@given(st.binary(max_size=300), st.sampled_from([".npz", ".npy", ".csv", ".json"]))
def test_property_embedding_files_of_any_bytes(tmp_path_factory, data, suffix):
    from emoclip.explore import load_embeddings

    path = tmp_path_factory.mktemp("emb") / f"x{suffix}"
    path.write_bytes(data)
    try:
        points = load_embeddings(path, expected_dim=None)
    except ValueError as exc:
        assert str(exc).startswith("x")
        return
    assert points and all(np.isfinite(p.embedding).all() for p in points)


@PROPERTY
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
       st.sampled_from(["<f4", "<f8", "|u1"]))
def test_property_npy_headers_are_checked_before_allocation(tmp_path_factory, shape, dtype):
    from emoclip.explore import load_embeddings

    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s,), }" % (
        dtype, ", ".join(map(str, shape)))
    header += " " * (118 - len(header)) + "\n"
    path = tmp_path_factory.mktemp("npy") / "h.npy"
    magic = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    path.write_bytes(magic + header.encode() + b"\x00" * 64)
    try:
        load_embeddings(path)
    except ValueError:
        return


# ---------------------------------------------------------------------------------------------
# Checkpoints: a pickle that carries code is refused and never run
# ---------------------------------------------------------------------------------------------


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _Eval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


class _Popen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


PAYLOADS = {"os.system": _System, "exec": _Exec, "eval": _Eval, "subprocess.Popen": _Popen}


def _evil_files(folder: Path, payload: type) -> dict[str, Path]:
    marker = folder / "PWNED"
    evil = {"logit_scale": torch.ones(1), "hidden": payload(marker)}
    raw = folder / "raw.pth"
    raw.write_bytes(pickle.dumps(evil, protocol=2))
    wrapped = folder / "wrapped.pt"
    wrapped.write_bytes(pickle.dumps({"state_dict": evil}))
    zipped = folder / "zipped.pth"
    torch.save(evil, zipped)  # torch's zip format, the payload in data.pkl
    disguised = folder / "disguised.safetensors"
    disguised.write_bytes(zipped.read_bytes())
    return {"raw": raw, "wrapped": wrapped, "zipped": zipped, "disguised": disguised}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malicious_pickles_are_refused_and_never_run(payload, tmp_path, monkeypatch, tiny_model,
                                                      capsys):
    monkeypatch.chdir(tmp_path)
    files = _evil_files(tmp_path, PAYLOADS[payload])
    marker = tmp_path / "PWNED"
    for kind, path in files.items():
        with pytest.raises(CheckpointError) as info:
            read_state_dict(path)
        assert path.name in str(info.value), kind
    # A disguised pickle with a valid sidecar, loaded as a model by path.
    sidecar = tmp_path / "disguised.json"
    save_checkpoint(tiny_model.state_dict(), tiny_model.config, tmp_path / "real.safetensors")
    sidecar.write_text((tmp_path / "real.json").read_text())
    with pytest.raises(CheckpointError):
        emoclip.load_model(files["disguised"])
    # Through the command line: converting and predicting with it.
    assert main(["convert", str(files["zipped"]), str(tmp_path / "out.safetensors")]) == 1
    assert main(["predict", "x.webm", "--model", str(files["disguised"]), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("emoclip: error: ") == 2
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_pickle_payload_detector_works(tmp_path):
    """The payloads above do run when unpickled unsafely (so the test above means something)."""
    marker = tmp_path / "PWNED"
    for payload in PAYLOADS.values():
        marker.unlink(missing_ok=True)
        result = pickle.loads(pickle.dumps(payload(marker)))
        if hasattr(result, "wait"):
            result.wait()
        if hasattr(result, "close"):
            result.close()
        assert marker.exists(), payload.__name__
