"""`emoclip.settings.AnalysisSettings`: one frozen value, documented defaults, built from the
environment in one place; the library reads no environment."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

import emoclip
from emoclip.faces import MIN_FACE_SCORE
from emoclip.inference.predictor import EmotionPredictor
from emoclip.media.inputs import VideoLimits
from emoclip.settings import AnalysisSettings

PACKAGE = Path(emoclip.__file__).parent
# the modules allowed to read the environment, and why
ENV_READERS = {
    "settings.py": "builds AnalysisSettings from EMOCLIP_* variables",
    "quiet.py": "log-level plumbing: EMOCLIP_LOG_LEVEL / EMOCLIP_DEBUG, native libraries' variables",
    "weights/hub.py": "huggingface_hub's own HF_HUB_OFFLINE / HF_ENDPOINT",
    "weights/registry.py": "where weights are looked for: EMOCLIP_WEIGHTS(_DIR), EMOCLIP_*HUB_REPO/REVISION",
    "batch/cluster.py": "Ray's own RAY_ADDRESS and its start-up variables",
    "train/distributed.py": "torchrun's WORLD_SIZE / RANK / LOCAL_RANK",
}


def test_every_field_documents_its_default():
    docs = AnalysisSettings.documented()
    fields = dataclasses.fields(AnalysisSettings)
    assert set(docs) == {f.name for f in fields}
    for f in fields:
        assert len(f.metadata["doc"]) > 20, f.name
        assert f.default is not dataclasses.MISSING, f.name  # every field has a default
    assert AnalysisSettings().min_face_score == MIN_FACE_SCORE
    assert AnalysisSettings().frame_folder_fps == 25.0


def test_as_dict_is_json_and_round_trips():
    s = AnalysisSettings(batch_size=4, max_pixels=1000, precision="fp32")
    d = s.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert AnalysisSettings(**d) == s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.batch_size = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    "var, raw, field, value",
    [
        ("EMOCLIP_PRECISION", " FP32 ", "precision", "fp32"),
        ("EMOCLIP_RELEASE_WEIGHTS", "off", "release_weights", False),
        ("EMOCLIP_PREFETCH", "0", "prefetch", False),
        ("EMOCLIP_PREFETCH", "yes", "prefetch", True),
        ("EMOCLIP_LIVE_THREADS", "0", "live_threads", 0),
        ("EMOCLIP_LIVE_THREADS", "2", "live_threads", 2),
        ("EMOCLIP_LIVE_THREADS", " Auto ", "live_threads", None),
        ("EMOCLIP_ENCODE_WORKERS", "3", "encode_workers", 3),
        ("EMOCLIP_INTERPOLATE_FACES", "false", "interpolate_faces", False),
        ("EMOCLIP_MIN_FACE_SCORE", "0.7", "min_face_score", 0.7),
        ("EMOCLIP_MIN_TRACK_FRAMES", "5", "min_track_frames", 5),
        ("EMOCLIP_MIN_FACE_COVERAGE", "0.25", "min_face_coverage", 0.25),
        ("EMOCLIP_TOWER_CACHE", "/tmp/towers", "tower_cache", "/tmp/towers"),
    ],
)
def test_from_env_parses_each_variable(var, raw, field, value):
    assert getattr(AnalysisSettings.from_env({var: raw}), field) == value
    assert getattr(AnalysisSettings.from_env({var: "  "}), field) == getattr(
        AnalysisSettings(), field
    )  # blank: the default


def test_every_variable_is_parsed_by_from_env():
    envs = {f.metadata["env"] for f in dataclasses.fields(AnalysisSettings) if "env" in f.metadata}
    assert envs == {
        "EMOCLIP_PRECISION",
        "EMOCLIP_RELEASE_WEIGHTS",
        "EMOCLIP_PREFETCH",
        "EMOCLIP_LIVE_THREADS",
        "EMOCLIP_ENCODE_WORKERS",
        "EMOCLIP_INTERPOLATE_FACES",
        "EMOCLIP_MIN_FACE_SCORE",
        "EMOCLIP_MIN_TRACK_FRAMES",
        "EMOCLIP_MIN_FACE_COVERAGE",
        "EMOCLIP_TOWER_CACHE",
    }


@pytest.mark.parametrize(
    "env, message",
    [
        ({"EMOCLIP_MIN_FACE_SCORE": "high"}, "EMOCLIP_MIN_FACE_SCORE must be a number"),
        ({"EMOCLIP_MIN_TRACK_FRAMES": "many"}, "EMOCLIP_MIN_TRACK_FRAMES must be a number"),
        ({"EMOCLIP_MIN_FACE_COVERAGE": "2"}, r"min_face_coverage must be in \[0.0, 1.0\]"),
        ({"EMOCLIP_MIN_TRACK_FRAMES": "0"}, "min_track_frames must be at least 1, got 0"),
        ({"EMOCLIP_PRECISION": "fp16"}, "precision must be one of"),
        ({"EMOCLIP_LIVE_THREADS": "-1"}, "live_threads must be at least 0"),
    ],
)
def test_from_env_refuses_bad_values(env, message):
    with pytest.raises(ValueError, match=message):
        AnalysisSettings.from_env(env)


def test_flags_override_the_environment_and_limits_map_to_fields():
    s = AnalysisSettings.from_env(
        {"EMOCLIP_PRECISION": "bf16"}, precision="fp32", limits=VideoLimits(max_duration=5.0)
    )
    assert s.precision == "fp32" and s.max_duration == 5.0
    assert s.limits == VideoLimits(max_duration=5.0)
    with pytest.raises(ValueError, match="face_fallback"):
        s.replace(face_fallback="blur")
    with pytest.raises(TypeError):
        s.replace(no_such_setting=1)


def _reads_environment(tree: ast.AST) -> list[int]:
    """Lines that touch ``os.environ`` or call ``getenv``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id in ("environ", "getenv"):
            lines.append(node.lineno)
    return lines


def test_the_library_reads_no_environment_outside_its_plumbing():
    readers = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        lines = _reads_environment(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            readers[rel] = lines
    unexpected = {rel: lines for rel, lines in readers.items() if rel not in ENV_READERS}
    assert not unexpected, f"modules reading the environment: {unexpected}"
    assert "settings.py" in readers


def test_the_predictor_ignores_the_environment(tiny_model, monkeypatch):
    monkeypatch.setenv("EMOCLIP_PRECISION", "bf16")
    monkeypatch.setenv("EMOCLIP_MIN_FACE_SCORE", "0.99")
    monkeypatch.setenv("EMOCLIP_PREFETCH", "0")
    assert EmotionPredictor(tiny_model).settings == AnalysisSettings()


def test_a_settings_value_changes_behaviour_without_the_environment(tiny_model):
    import numpy as np

    from emoclip.testing.media import face_patch, noisy_background

    frames = np.stack([noisy_background((480, 640), i) for i in range(6)])
    frames[:, 140:340, 10:210] = np.asarray(face_patch())  # the astronaut scores ~0.83
    rate = tiny_model.config.preprocess.sample_fps
    found = EmotionPredictor(tiny_model, AnalysisSettings(interpolate_faces=False))
    strict = EmotionPredictor(
        tiny_model, AnalysisSettings(min_face_score=0.999, interpolate_faces=False)
    )
    assert found.predict(frames, fps=rate).faces.frames_with_face > 0
    assert strict.predict(frames, fps=rate).faces.frames_with_face == 0
