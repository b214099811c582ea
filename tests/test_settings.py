"""`emoclip.settings.AnalysisSettings`: one frozen value, documented defaults, built from the
environment in one place; the library reads no environment."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest

import emoclip
from emoclip.faces import MIN_FACE_SCORE
from emoclip.inference.predictor import EmotionPredictor
from emoclip.media.inputs import VideoLimits
from emoclip.settings import (
    MODEL_VARIABLES,
    AnalysisSettings,
    ModelLocations,
    debug_tracebacks,
    native_logs_enabled,
)

PACKAGE = Path(emoclip.__file__).parent
# The modules allowed to touch the environment, and why. Every EMOCLIP_* variable is read in
# settings.py; the others touch only variables that another library defines and reads itself.
ENV_READERS = {
    "settings.py": "the one builder: AnalysisSettings and ModelLocations from EMOCLIP_* "
    "variables (from_env), the EMOCLIP_LOG_LEVEL / EMOCLIP_DEBUG switches",
    "quiet.py": "writes only: os.environ.setdefault of the native libraries' own quiet switches "
    "(GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL, OPENCV_LOG_LEVEL), which those libraries read",
    "weights/hub.py": "huggingface_hub's own HF_HUB_OFFLINE / HF_ENDPOINT: the Hub client reads "
    "them too, so the probe must agree with it",
    "batch/cluster.py": "Ray's own RAY_ADDRESS (as `ray.init` reads it) and the start-up "
    "variables Ray's workers read, set for the local Ray started here",
    "train/distributed.py": "torchrun's WORLD_SIZE / RANK / LOCAL_RANK: torchrun sets them for "
    "each process it starts; there is no other channel",
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
        ("EMOCLIP_COMPILE_TOWER", "1", "compile_tower", True),
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
        "EMOCLIP_COMPILE_TOWER",
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


def test_model_locations_from_env_reads_each_variable():
    env = {
        "EMOCLIP_WEIGHTS": " /w/paper.safetensors ",
        "EMOCLIP_WEIGHTS_DIR": os.pathsep.join(["/a", "", "/b"]),
        "EMOCLIP_HUB_REPO": "me/emoclip",
        "EMOCLIP_HUB_REVISION": "a" * 40,
        "EMOCLIP_TINY_HUB_REPO": "me/tiny",
        "EMOCLIP_TINY_HUB_REVISION": "  ",  # blank: unset
    }
    where = ModelLocations.from_env(env)
    assert where == ModelLocations(
        weights={"emoclip-vitb32": "/w/paper.safetensors"},
        weights_dirs=("/a", "/b"),
        hub_repos={"emoclip-vitb32": "me/emoclip", "emoclip-synthetic-tiny": "me/tiny"},
        hub_revisions={"emoclip-vitb32": "a" * 40},
    )
    assert where.hub_revision("emoclip-synthetic-tiny") is None
    assert ModelLocations.from_env({}) == ModelLocations()  # nothing set: no overrides
    assert ModelLocations.from_env(env, weights_dirs=["/c"]).weights_dirs == ("/c",)  # flags win
    variables = {v for names in MODEL_VARIABLES.values() for v in names.values()}
    assert variables | {"EMOCLIP_WEIGHTS_DIR"} == set(env)  # every variable is read


def test_model_locations_is_a_documented_frozen_json_value():
    where = ModelLocations(weights_dirs=[Path("/x")], hub_repos={"emoclip-vitb32": "me/e"})
    assert where.weights_dirs == ("/x",) and hash(where) == hash(ModelLocations(**where.as_dict()))
    assert json.loads(json.dumps(where.as_dict())) == where.as_dict()
    assert pickle.loads(pickle.dumps(where)) == where  # it travels to batch workers
    with pytest.raises(dataclasses.FrozenInstanceError):
        where.weights_dirs = ()  # type: ignore[misc]
    with pytest.raises(TypeError, match="sequence of folders"):
        ModelLocations(weights_dirs="/one/path")  # type: ignore[arg-type]
    docs = ModelLocations.documented()
    assert set(docs) == {f.name for f in dataclasses.fields(ModelLocations)}
    assert (
        "EMOCLIP_WEIGHTS_DIR" in docs["weights_dirs"]
        and "EMOCLIP_HUB_REVISION" in docs["hub_revisions"]
    )


def test_log_switches_are_read_from_the_given_environment():
    assert native_logs_enabled({"EMOCLIP_LOG_LEVEL": " DEBUG "})
    assert not native_logs_enabled({"EMOCLIP_LOG_LEVEL": "info"}) and not native_logs_enabled({})
    assert debug_tracebacks({"EMOCLIP_DEBUG": "1"}) and not debug_tracebacks({"EMOCLIP_DEBUG": ""})
