"""The `emoclip` command line, run as a new user would (subprocesses for the entry points)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from emoclip.cli import main
from emoclip.testing.media import moving_face_frames, write_video
from emoclip.weights.files import save_checkpoint


def _run(*args, cwd=None, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "emoclip", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_models_answers_quickly_without_network(tmp_path):
    start = time.monotonic()
    out = _run(
        "models",
        cwd=tmp_path,
        env_extra={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert out.returncode == 0, out.stderr
    assert (
        time.monotonic() - start < 60
    )  # no hang; the resolution itself (< 3 s) is asserted in test_weights
    for name in ("emoclip-vitb32", "clip-vitb32", "emoclip-synthetic-tiny"):
        assert name in out.stdout


def test_predict_with_model_path_writes_json_and_csv(tiny_model, tmp_path):
    weights = save_checkpoint(
        tiny_model.state_dict(), tiny_model.config, tmp_path / "tiny.safetensors"
    )
    video = write_video(tmp_path / "face.webm", moving_face_frames(24, size=(240, 320)), fps=8)
    classes = tmp_path / "classes.yaml"
    classes.write_text(
        "classes:\n  calm: a relaxed face\n  joy: a big smile\n  fury: an angry scowl\n"
    )
    out = _run(
        "predict",
        str(video),
        "--model",
        str(weights),
        "--classes",
        str(classes),
        "--json",
        str(tmp_path / "o.json"),
        "--csv",
        str(tmp_path / "o.csv"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "o.json").read_text())
    assert set(data["probabilities"]) == {"calm", "joy", "fury"}
    assert abs(sum(data["probabilities"].values()) - 1) < 1e-4
    assert len(data["embedding"]) == 32 and abs(sum(x * x for x in data["embedding"]) - 1) < 1e-3
    assert data["timeline"] and "face.webm" in out.stdout
    assert (
        (tmp_path / "o.csv").read_text().startswith("video,scope,track,start,end,class,probability")
    )


def test_predict_reports_bad_files_and_keeps_going(tiny_model, tmp_path, capsys):
    weights = save_checkpoint(
        tiny_model.state_dict(), tiny_model.config, tmp_path / "tiny.safetensors"
    )
    good = write_video(tmp_path / "good.webm", moving_face_frames(16, size=(240, 320)), fps=8)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    code = main(
        [
            "predict",
            str(bad),
            str(good),
            "--model",
            str(weights),
            "--classes",
            "dfew-7",
            "--quiet",
            "--json",
            str(tmp_path / "o.json"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "bad.mp4" in captured.err and "good.webm" in captured.out
    assert json.loads((tmp_path / "o.json").read_text())["video"]["name"] == "good.webm"


def test_predict_without_weights_explains(tmp_path, capsys):
    video = write_video(tmp_path / "v.webm", moving_face_frames(8, size=(240, 320)), fps=8)
    code = main(["predict", str(video), "--model", "emoclip-vitb32", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "no weights" in err and "emoclip convert" in err


@pytest.mark.parametrize("classes", ["no-such-preset", "missing.yaml"])
def test_predict_bad_classes(classes, tmp_path, capsys):
    assert main(["predict", "x.webm", "--classes", classes, "--quiet"]) == 1
    assert "error" in capsys.readouterr().err


NATIVE_MARKERS = (
    "INFO:",
    "W0000",
    "I0000",
    "E0000",
    "WARNING: Logging before",
    "XNNPACK",
    "absl",
    "TfLite",
    "TensorFlow Lite",
    "LiteRT",
    "FFMPEG",
)


def _stderr_lines(text: str) -> list[str]:
    """Non-blank stderr lines; a progress bar redraws with carriage returns, each a line here."""
    return [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]


def _face_clip_and_weights(tiny_model, tmp_path):
    weights = save_checkpoint(
        tiny_model.state_dict(), tiny_model.config, tmp_path / "tiny.safetensors"
    )
    video = write_video(tmp_path / "face.webm", moving_face_frames(16, size=(240, 320)), fps=8)
    return video, weights


def test_predict_stderr_holds_only_the_progress_bar_and_our_lines(tiny_model, tmp_path):
    video, weights = _face_clip_and_weights(tiny_model, tmp_path)
    out = _run(
        "predict",
        str(video),
        "--model",
        str(weights),
        "--classes",
        "dfew-7",
        cwd=tmp_path,
        env_extra={"EMOCLIP_LOG_LEVEL": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "face.webm: " in out.stdout
    lines = _stderr_lines(out.stderr)
    assert any("%|" in line for line in lines)  # the progress bar is still shown
    assert any(line.startswith("model: test-emoclip-tiny (") for line in lines)
    for line in lines:
        is_bar = line.startswith("face.webm:") and "%|" in line
        ours = line.startswith(("model: ", "emoclip: ", "warning: "))
        assert is_bar or ours, f"unexpected stderr line: {line!r}"
        assert not any(marker in line for marker in NATIVE_MARKERS), line


@pytest.mark.parametrize("how", ["--verbose", "EMOCLIP_LOG_LEVEL=debug"])
def test_predict_verbose_shows_native_log_lines(how, tiny_model, tmp_path):
    video, weights = _face_clip_and_weights(tiny_model, tmp_path)
    args = ["predict", str(video), "--model", str(weights), "--classes", "dfew-7", "--quiet"]
    if how == "--verbose":
        out = _run(*args, "--verbose", cwd=tmp_path, env_extra={"EMOCLIP_LOG_LEVEL": ""})
    else:
        out = _run(*args, cwd=tmp_path, env_extra={"EMOCLIP_LOG_LEVEL": "debug"})
    assert out.returncode == 0, out.stderr
    lines = _stderr_lines(out.stderr)
    assert any(line.startswith("model: test-emoclip-tiny (") for line in lines)
    # MediaPipe's LiteRT runtime logs its XNNPACK delegate ("INFO: Created TensorFlow Lite XNNPACK
    # delegate for CPU.") when the detector is created: native lines reach the terminal again.
    assert any(marker in line for line in lines for marker in NATIVE_MARKERS), out.stderr
