"""Hostile videos through every library and CLI entry point (issue #6, library and CLI half).

Entry points attacked: every bad video of `hostile_cases.VIDEO_CASES` goes through (a)
`emoclip.media` (`probe_video` + `iter_frames`), (b) `EmotionPredictor.predict` with the tiny
model and (c) ``emoclip predict`` (`emoclip.cli.main`). Each either succeeds sensibly or fails
with a typed error (`VideoDecodeError`, `LimitError`, `NoFaceError`, `ClassSetError`) whose
message says what was wrong; the CLI exits with 1 and prints ``emoclip: <file>: <problem>``.
Never another exception type, a traceback or a crash. Then what the battery alone does not show
(limits tripping before decoding, frame rates, rotation, the CLI going on after bad files).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hostile_cases import (
    CLI_LIMITS,
    FACE_SIZE,
    LIMITS,
    VIDEO_CASES,
    Case,
    battery_predictor,
    check_error,
    cli_shown,
    save_tiny_weights,
    video_case_files,
)

from emoclip.cli import main
from emoclip.inference.encoding import NoFaceError
from emoclip.inference.predictor import EmotionPredictor
from emoclip.media import (
    VideoDecodeError,
    frames as video_frames,
    inputs,
    iter_frames,
    probe as video_probe,
    probe_video,
)
from emoclip.media.inputs import VideoLimits
from emoclip.media.probe import LimitError


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Build a case's file on first use (each case in its own folder), then reuse it."""
    return video_case_files(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = battery_predictor(tiny_model)
    yield p
    p.close()


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory) -> Path:
    return save_tiny_weights(tiny_model, tmp_path_factory.mktemp("weights"))


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
        check_error(exc, case)
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
        check_error(exc, case)
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
    shown = cli_shown(path)
    if code == 0:
        assert case.expect in ("ok", "any"), f"expected {case.expect}; stderr: {err}"
        assert out.startswith(f"{shown}: ") and "(" in out
        return
    assert code == 1 and case.expect != "ok", err
    if (
        name == "directory.mp4"
    ):  # a folder is searched for videos, images and frame folders: none here
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

    monkeypatch.setattr(video_probe.cv2, "VideoCapture", Counting)
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
        "from emoclip.media import probe_video, LimitError\n"
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
        out = subprocess.run(
            [sys.executable, "-c", code, str(path), str(limit)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
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
    monkeypatch.setattr(video_frames, "MAX_SANE_FPS", 100.0)  # the binding iter_frames reads
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
    code = main(
        [
            "predict",
            *map(str, bad),
            str(good),
            "--model",
            str(weights),
            "--quiet",
            *CLI_LIMITS,
            "--json",
            str(tmp_path / "o.json"),
            "--csv",
            str(tmp_path / "o.csv"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert [line.split(": ")[0] for line in err.splitlines() if line.startswith("emoclip: ")] == [
        f"emoclip: {p}".split(": ")[0] for p in bad
    ]
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
    original = inputs.resolve_input  # where the CLI meets each input first

    def flaky(video, *args, **kwargs):
        if (getattr(video, "name", None) or Path(video).name) == "bit_flips.webm":
            raise RuntimeError("decoder exploded")
        return original(video, *args, **kwargs)

    monkeypatch.setattr(inputs, "resolve_input", flaky)
    code = main(
        ["predict", str(media("bit_flips.webm")), str(good), "--model", str(weights), "--quiet"]
    )
    out, err = capsys.readouterr()
    assert code == 1 and "unexpected RuntimeError: decoder exploded" in err
    assert "Traceback" not in err and out.startswith(f"{good}: ")


def test_cli_unreadable_output_path_is_a_message(media, weights, tmp_path, capsys):
    code = main(
        [
            "predict",
            str(media("one_frame.webm")),
            "--model",
            str(weights),
            "--quiet",
            "--json",
            str(tmp_path),
        ]
    )  # a directory
    err = capsys.readouterr().err
    assert code == 1 and "emoclip: error: " in err and "Traceback" not in err


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max-seconds", "0"),
        ("--max-megapixels", "-1"),
        ("--max-mb", "lots"),
        ("--max-seconds", "inf"),
    ],
)
def test_cli_limit_flags_are_validated(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "x.webm", flag, value])
    assert info.value.code == 2 and flag in capsys.readouterr().err


def test_cli_limits_trip_before_decoding(media, weights, capsys):
    path = media("one_frame.webm")
    code = main(["predict", str(path), "--model", str(weights), "--quiet", "--max-mb", "0.001"])
    assert code == 1 and "MB" in capsys.readouterr().err
    code = main(
        ["predict", str(path), "--model", str(weights), "--quiet", "--max-megapixels", "0.01"]
    )
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
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TMPDIR": str(temp),
        "PYTHONIOENCODING": "utf-8",
        "LC_ALL": "C.UTF-8",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "emoclip",
            "predict",
            str(folder),
            "--model",
            str(weights),
            "--quiet",
            "--json",
            str(tmp_path / "o.json"),
            "--csv",
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
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
        "from emoclip.media import probe_video, iter_frames\n"
        "for name in os.listdir(sys.argv[1]):\n"
        "    path = os.path.join(sys.argv[1], name)\n"
        "    assert probe_video(path).width == 240 and len(list(iter_frames(path))) == 1\n"
        "    assert os.listdir('/proc/self/fd') == os.listdir('/proc/self/fd')\n"
        "print('ok', len(os.listdir('/proc/self/fd')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, env=env, timeout=120
    )
    assert out.returncode == 0 and out.stdout.startswith(b"ok"), out.stderr
