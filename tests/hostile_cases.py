"""The hostile-input battery's shared material: media generators, `Case`, the case tables.

A plain helper module (``tests/`` is on pytest's pythonpath): the ``test_hostile_*.py`` files
parametrise over its tables (`VIDEO_CASES`, `IMAGE_CASES`, `CLASS_TEXTS`, `EMBEDDING_FILES`,
`EMBEDDING_FILES_THAT_LOAD`, `PAYLOADS`) and build their module-scoped fixtures with its builder
functions (`video_case_files`, `image_case_files`, `battery_predictor`, `save_tiny_weights`,
`battery_encoding`). Building a table writes no file: a case's file is written on first use.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, settings

from emoclip.classes import ClassSetError
from emoclip.inference.encoding import NoFaceError, VideoEncoding
from emoclip.inference.predictor import EmotionPredictor
from emoclip.media import VideoDecodeError
from emoclip.media.inputs import VideoLimits
from emoclip.media.probe import LimitError
from emoclip.model.network import EmoCLIP
from emoclip.testing.media import (
    blank_frames,
    moving_face_frames,
    png_header_only,
    set_mp4_rotation,
    write_video,
    write_wav,
)
from emoclip.weights.files import save_checkpoint

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
        decoder: What the video decoder alone (`emoclip.media`) makes of it when that differs
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
    "random_bytes.mp4": Case(
        lambda p: _bytes(p, np.random.default_rng(0).bytes(20_000)), VideoDecodeError, "cannot open"
    ),
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
    "huge_8000x8000.mp4": Case(
        lambda p: _writer(p, "mp4v", (8000, 8000), 2, 4.0), LimitError, "megapixels"
    ),
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
    "html.webm": Case(
        lambda p: _bytes(p, b"<html><script>alert(1)</script></html>"),
        VideoDecodeError,
        "cannot open",
    ),
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


def cli_shown(path: Path) -> str:
    """How the CLI prints a path: control characters escaped."""
    text = str(path)
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def check_error(exc: BaseException, case: Case) -> None:
    assert isinstance(exc, TYPED), f"{type(exc).__name__}: {exc}"
    if case.expect not in ("ok", "any"):
        assert isinstance(exc, case.expect), f"{type(exc).__name__}: {exc}"
    assert str(exc).strip(), "an error without a message"
    assert case.match.lower() in str(exc).lower(), str(exc)


# ---------------------------------------------------------------------------------------------
# Images and frame folders (issue #10)
# ---------------------------------------------------------------------------------------------


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _pil(path: Path, image: np.ndarray | None = None, mode: str | None = None, **kwargs) -> Path:
    from PIL import Image

    im = Image.fromarray(_astronaut() if image is None else image)
    (im.convert(mode) if mode else im).save(path, **kwargs)
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
    "signature_only.png": Case(
        lambda p: _bytes(p, b"\x89PNG\r\n\x1a\n"), VideoDecodeError, "signature_only.png"
    ),
    "bit_flips.jpg": Case(lambda p: _flip(_pil(p)), "any"),
    "random_bytes.webp": Case(
        lambda p: _bytes(p, np.random.default_rng(1).bytes(5000)),
        VideoDecodeError,
        "random_bytes.webp",
    ),
    "zero_size.png": Case(lambda p: png_header_only(p, 0, 0), VideoDecodeError, "zero_size.png"),
    # huge (the header is checked before any pixel is decoded)
    "wide_30000x20.png": Case(lambda p: png_header_only(p, 30000, 20), LimitError, "30000x20"),
    "bomb_30000x30000.png": Case(
        lambda p: png_header_only(p, 30000, 30000), LimitError, "30000x30000"
    ),
    # other things with image extensions
    "text.jpg": Case(lambda p: _bytes(p, b"not an image\n" * 30), VideoDecodeError, "text.jpg"),
    "html.png": Case(
        lambda p: _bytes(p, b"<html><script>alert(1)</script></html>"), VideoDecodeError, "html.png"
    ),
    "gif.png": Case(_gif, VideoDecodeError, "GIF image"),
    # a video named .jpg: read as the image its name says, which it is not
    "video.jpg": Case(
        lambda p: _face(p.with_suffix(".webm")).rename(p), VideoDecodeError, "video.jpg"
    ),
    # hostile names
    "\x1b[31mansi\x07.png": Case(_pil),
    "<img src=x onerror=alert(1)>.jpg": Case(_pil),
    # folders of frames
    "frames": Case(_frame_folder),
    "frames_one_corrupt": Case(
        lambda p: _frame_folder(p, corrupt=0), VideoDecodeError, "00001.jpg"
    ),
    "unrelated_files": Case(_unrelated_folder, VideoDecodeError, "not a clip"),
}


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
    "duplicate composed/decomposed": (
        'classes:\n  "caf\\u00e9": a\n  "cafe\\u0301": b\n',
        "error",
        "same name",
    ),
    "duplicate JSON key": ('{"classes": {"a": "x", "a": "y"}}', "error", "duplicate key"),
    "empty description": ("classes:\n  joy: ''\n  sad: b\n", "error", "is empty"),
    "missing description": ("classes:\n  joy:\n  sad: b\n", "error", "no descriptions"),
    "over-long description": (
        "classes:\n  joy: " + "a" * 1001 + "\n  sad: b\n",
        "error",
        "1001 characters",
    ),
    "over-long name": ("classes:\n  " + "n" * 65 + ": a\n  sad: b\n", "error", "65 characters"),
    "too many classes": (
        "classes:\n" + "".join(f"  c{i}: d{i}\n" for i in range(65)),
        "error",
        "too many classes",
    ),
    "too many descriptions": (
        "classes:\n  joy: [" + ", ".join(["a"] * 17) + "]\n",
        "error",
        "too many descriptions",
    ),
    "file too large": ("joy: " + "x" * 300_000, "error", "limit"),
    "control character": ('classes:\n  "a\\u001b[31m": x\n  b: y\n', "error", "U+001B"),
    "lone surrogate": ('{"classes": {"\\ud800": "x", "b": "y"}}', "error", "U+D800"),
    "tab indentation": ("classes:\n\tjoy: a\n", "error", "line 2"),
    "unclosed bracket": ("classes: [a, b", "error", "YAML error"),
    "bad JSON": ('{"classes": {"a": "b" "c": "d"}}', "error", "JSON syntax error"),
    "binary": ("\x00\x01\x02", "error", "U+0000"),
    "deep nesting": ("[" * 5000, "error", "nested too deeply"),
    "alias bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
        "error",
        "",
    ),
    "python tag": ("!!python/object/apply:os.system ['echo pwned']", "error", "constructor"),
    "merge key": ("base: &b {x: 1}\nclasses:\n  <<: *b\n", "error", "merge keys"),
    "date key": ("classes:\n  2024-01-01: a\n  b: c\n", "error", "date"),
    "number key": ("classes:\n  1: a\n  2: b\n", "error", "must be text"),
    "huge number": ("classes:\n  a: " + "9" * 5000, "error", "number"),
    # valid, and kept verbatim
    "64 classes": ("classes:\n" + "".join(f"  c{i}: d{i}\n" for i in range(64)), "ok", ""),
    "CJK": ("classes:\n  喜び: 笑顔の人\n  悲しみ: 泣いている顔\n  怒り: 怒った顔\n", "ok", ""),
    "emoji": ("classes:\n  😀: 😀😀😀\n  😢: a crying face 😢\n  🏳️‍🌈: 👨‍👩‍👧‍👦\n", "ok", ""),
    "RTL and zero-width": (
        'classes:\n  "غضب": وجه غاضب\n  "a\\u202eb": x\n  "\\u200b": y\n',
        "ok",
        "",
    ),
    "HTML and script": (
        "classes:\n  '<script>alert(1)</script>': '<img src=x onerror=alert(1)>'\n"
        "  '</td><b>bold</b>': '<iframe src=javascript:alert(1)>'\n",
        "ok",
        "",
    ),
    "Markdown": (
        "classes:\n  '**bold** [x](javascript:alert(1))': '# heading\\n\\n| a | b |'\n"
        "  '`code`': '![img](http://x/y.png)'\n",
        "ok",
        "",
    ),
    "CSV and formula injection": (
        'classes:\n  "=cmd|\' /C calc\'!A0": "a, \\"quoted\\", b"\n  "+1,2\\n3": "x"\n',
        "ok",
        "",
    ),
    "long description": ("classes:\n  joy: " + "word " * 199 + "\n  sad: b\n", "ok", ""),
    "same descriptions": ("classes:\n  a: same\n  b: same\n", "ok", ""),
    "one class": ("classes:\n  joy: a smile\n", "ok", ""),
    "JSON": (
        '{"classes": {"joy": ["a", "b"], "sad": "c"}, "compounds": {"bitter": ["joy", "sad"]}}',
        "ok",
        "",
    ),
    "flat authors' format": ("anger: a frown\nhappiness: a smile\n", "ok", ""),
}


# ---------------------------------------------------------------------------------------------
# Property-based tests: one setting for all
# ---------------------------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------------------------
# Latent explorer: embedding files
# ---------------------------------------------------------------------------------------------


def _npy_with_header(shape: str, body: bytes = b"\x00" * 64) -> bytes:
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
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
    "empty.npz": b"",
    "empty.npy": b"",
    "empty.csv": b"",
    "empty.json": b"",
    "object.npy": _np_bytes(
        lambda b: np.save(b, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    ),
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
        lambda b: np.savez(b, embeddings=np.ones((2, 4)), ids=np.arange(2))
    ),
    "nan.npy": _np_bytes(lambda b: np.save(b, np.array([[np.nan, 1.0]]))),
    "complex.npy": _np_bytes(lambda b: np.save(b, np.ones((2, 2), complex))),
    "3d.npy": _np_bytes(lambda b: np.save(b, np.ones((2, 2, 2)))),
    "scalar.npy": _np_bytes(lambda b: np.save(b, np.float32(3))),
    "zero-dim.npy": _np_bytes(lambda b: np.save(b, np.zeros((3, 0)))),
    "records.npy": _np_bytes(lambda b: np.save(b, np.zeros(3, dtype=[("a", "f4")]))),
    "ragged.csv": b"a,1,2\nb,1\n",
    "nan.csv": b"a,nan,1\nb,inf,2\n",
    "text.csv": b"a,b,c\nd,e,f\n",
    "latin1.csv": "\xe9t\xe9,1,2\n".encode("latin-1"),
    "big-field.csv": b'"' + b"x" * 200_000 + b'",1\n',
    "deep.json": b"[" * 100_000,
    "big-int.json": b'[{"embedding": [1' + b"0" * 5000 + b"]}]",
    "nan.json": b'[{"embedding": [NaN, 1]}]',
    "object.json": b'{"a": 1}',
    "nested.json": b'[{"embedding": [[1, 2]]}]',
    "id-number.json": b'[{"embedding": [1, 2], "id": 5}]',
    "latin1.json": b'[{"embedding": [1, 2], "id": "\xe9"}]',
    "unsupported.txt": b"1,2\n",
    "folder.npz": None,
}
EMBEDDING_FILES_THAT_LOAD = {  # name: labels, kept as text
    "html.csv": (
        b"<script>alert(1)</script>,1,2\n**md**,3,4\n=cmd|' /C calc'!A0,5,6\n",
        ["<script>alert(1)</script>", "**md**", "=cmd|' /C calc'!A0"],
    ),
    "emoji.json": ('[{"embedding": [1, 2], "id": "😀", "label": "喜び"}]'.encode(), ["喜び"]),
}


# ---------------------------------------------------------------------------------------------
# Checkpoints: pickles that carry code
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


# ---------------------------------------------------------------------------------------------
# Builders of the per-file module-scoped fixtures
# ---------------------------------------------------------------------------------------------


def video_case_files(root: Path) -> Callable[[str], Path]:
    """Build a `VIDEO_CASES` file on first use (each case in its own folder under `root`), then
    reuse it."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            folder = root / f"case{len(built)}"
            folder.mkdir()
            built[name] = VIDEO_CASES[name].build(folder / name)
        return built[name]

    return get


def image_case_files(root: Path) -> Callable[[str], Path]:
    """Build an `IMAGE_CASES` file or folder on first use (each case in its own folder under
    `root`), then reuse it."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            folder = root / f"case{sorted(IMAGE_CASES).index(name)}"
            folder.mkdir()
            built[name] = IMAGE_CASES[name].build(folder / name)
        return built[name]

    return get


def battery_predictor(model: EmoCLIP) -> EmotionPredictor:
    """The predictor every entry point is attacked with: batches of 8, the battery's `LIMITS`.
    The caller closes it."""
    return EmotionPredictor(model, batch_size=8, limits=LIMITS)


def save_tiny_weights(model: EmoCLIP, folder: Path) -> Path:
    """`model` saved as ``folder/tiny.safetensors`` (+ its JSON sidecar), for ``--model``."""
    path = folder / "tiny.safetensors"
    return save_checkpoint(model.state_dict(), model.config, path)


def battery_encoding(predictor: EmotionPredictor) -> VideoEncoding:
    """An encoding of 6 synthetic 64x64 frames (uint8 (6, 64, 64, 3), a bright band) at 4 fps,
    for scoring class sets against."""
    frames = np.full((6, 64, 64, 3), 128, np.uint8)
    frames[:, 20:40] = 200
    return predictor.encode(frames, fps=4.0)
