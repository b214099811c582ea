"""A model reference is read one way at every door (issue #19, 1): a registry name, a
``.safetensors`` path or a Hub id ``owner/name[@revision]`` is accepted by `load_model`,
``emoclip predict --model``, ``emoclip batch --model`` (its worker), ``EMOCLIP_APP_MODEL`` and the
app's model menu (`ModelManager`); a model that cannot be loaded is an error the user sees, never
a silent switch to another model."""

from __future__ import annotations

import json
import shutil

import pytest
from hub_fixtures import COMMIT, populate_cache

import emoclip
from emoclip.classes import preset
from emoclip.cli import main
from emoclip.testing.media import moving_face_frames, write_video
from emoclip.weights import hub
from emoclip.weights.files import save_checkpoint
from emoclip.weights.refs import ModelRefError, identify_model, ref_kind
from emoclip.weights.registry import WeightsNotFoundError

REPO = "someone/tiny-emoclip"


@pytest.fixture
def refs(tmp_path, tiny_model, monkeypatch):
    """The same tiny weights as a file (relative path), in a Hub cache, and a clip."""
    folder = tmp_path / "weights"
    folder.mkdir()
    path = save_checkpoint(tiny_model.state_dict(), tiny_model.config, folder / "x.safetensors")
    cache = tmp_path / "hub"
    populate_cache(
        cache,
        REPO,
        {"tiny-emoclip.safetensors": path, "tiny-emoclip.json": path.with_suffix(".json")},
    )
    original = hub.cached_file

    def cached_file(repo_id, filename, *, revision=None, cache_dir=None):
        return original(repo_id, filename, revision=revision, cache_dir=cache_dir or cache)

    monkeypatch.setattr(hub, "cached_file", cached_file)
    monkeypatch.chdir(tmp_path)
    clip = tmp_path / "clip.webm"
    write_video(clip, moving_face_frames(8, size=(240, 320)), fps=8)
    return {"file": "weights/x.safetensors", "hub": f"{REPO}@{COMMIT}", "clip": clip, "path": path}


def test_one_reading_of_a_model_reference(refs, tmp_path):
    assert ref_kind("test-emoclip-tiny") == "registry"
    assert ref_kind(refs["file"]) == "file"
    assert ref_kind("weights/missing.safetensors") == "file"  # a file that is not there
    assert ref_kind(refs["hub"]) == "hub" and ref_kind(REPO) == "hub"
    with pytest.raises(ModelRefError, match="registry name"):
        ref_kind("no such model")
    by_file = identify_model(refs["file"])
    by_hub = identify_model(refs["hub"])
    assert by_file.weights_sha256 == by_hub.weights_sha256 is not None
    assert (by_hub.kind, by_hub.name, by_hub.revision) == ("hub", REPO, COMMIT)
    assert by_hub.source == "hub-cache"


def test_load_model_takes_a_name_a_file_and_a_hub_id(refs, tiny_model):
    import torch

    for ref in ("test-emoclip-tiny", refs["file"], refs["hub"]):
        model = emoclip.load_model(ref)
        assert model.identity.ref == ref
    a, b = emoclip.load_model(refs["file"]), emoclip.load_model(refs["hub"])
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert "sha256 verified" in b.source and COMMIT in b.source
    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        emoclip.load_model("weights/missing.safetensors")
    with pytest.raises(FileNotFoundError):  # not cached, Hub offline: said, not replaced
        emoclip.load_model("someone/not-there")


def test_cli_predict_model_door(refs, tmp_path, capsys):
    answers = {}
    for ref in ("test-emoclip-tiny", refs["file"], refs["hub"]):
        out = tmp_path / f"{len(answers)}.json"
        code = main(["predict", str(refs["clip"]), "--model", ref, "--quiet", "--json", str(out)])
        assert code == 0, capsys.readouterr().err
        answers[ref] = json.loads(out.read_text())
    file_answer, hub_answer = answers[refs["file"]], answers[refs["hub"]]
    assert file_answer["probabilities"] == hub_answer["probabilities"]  # the same weights
    assert hub_answer["provenance"]["model"] == REPO
    assert hub_answer["provenance"]["hub_revision"] == COMMIT
    capsys.readouterr()
    for bad, said in (
        ("weights/missing.safetensors", "no weights file"),
        ("not a model", "unknown model"),
    ):
        assert main(["predict", str(refs["clip"]), "--model", bad, "--quiet"]) == 1
        assert said in capsys.readouterr().err


def test_batch_model_door_worker_and_plan(refs, tmp_path):
    """The batch driver names the model as every door does; its worker loads it the same way."""
    from emoclip.batch.plan import batch_settings, plan_batch
    from emoclip.batch.store import ResultsStore
    from emoclip.batch.worker import BatchWorker

    settings = batch_settings() | {"precision": "fp32"}
    for ref in ("test-emoclip-tiny", refs["file"], refs["hub"]):
        plan = plan_batch(
            [refs["clip"]], ResultsStore(tmp_path / "out"), model=ref, classes=None,
            settings=settings,
        )  # fmt: skip
        assert plan.pending.num_rows == 1
        worker = BatchWorker(
            plan.model, plan.classes, plan.key, settings=settings,
            provenance=plan.provenance.as_dict(),
        )  # fmt: skip
        assert worker.mismatch is None, ref  # the worker loaded what the driver named
        row, _ = worker.analyse(plan.pending.to_pylist()[0])
        assert row.get("error") is None and row["top"], ref
    with pytest.raises(ModelRefError):
        plan_batch(
            [refs["clip"]], ResultsStore(tmp_path / "o2"), model="not a model", classes=None,
            settings=settings,
        )  # fmt: skip


@pytest.mark.parametrize("kind", ["file", "hub"])
def test_app_model_door_env_and_menu(refs, kind, repo_root):
    """EMOCLIP_APP_MODEL (`ModelManager(forced=...)`) and the model menu take a file or a Hub id."""
    from emoclip_app.models import ModelManager

    manager = ModelManager([repo_root / "weights"], forced=refs[kind])
    try:
        assert manager.wait_ready(120)
        assert manager.default == refs[kind]
        assert manager.status(refs[kind]).state == "ready"
        frames = list(moving_face_frames(8, size=(240, 320)))
        assert manager.predictor(refs[kind]).predict(frames, fps=8).top
        other = manager.predictor("emoclip-synthetic-tiny")  # the menu: another model by name
        assert other.model.config.name == "emoclip-synthetic-tiny"
    finally:
        manager.close()


def test_app_model_that_cannot_load_is_an_error_not_the_toy(refs, repo_root, tmp_path):
    """A missing file, an unknown name and a corrupt file: no model runs, the status says why;
    the toy in weights/ (which would load) is not silently served instead."""
    from emoclip_app import models

    corrupt = tmp_path / "weights" / "bad.safetensors"
    shutil.copy(refs["path"].with_suffix(".json"), corrupt.with_suffix(".json"))
    corrupt.write_bytes(b"not safetensors")
    for forced, said in (
        ("weights/missing.safetensors", "no weights file"),
        ("not a model", "unknown model"),
        (str(corrupt), "bad.safetensors"),
    ):
        manager = models.ModelManager([repo_root / "weights"], forced=forced)
        try:
            assert not manager.wait_ready(60)
            manager.wait_idle(60)
            assert manager.default is None and manager.loading() == []
            st = manager.status(forced)
            assert st.state == "error" and said in st.detail, (forced, st)
            with pytest.raises(Exception, match="could not be loaded|no weights|unknown|bad"):
                models.ModelManager.predictor(manager, forced)
        finally:
            manager.close()
    # what the status line shows (the app's module-level manager, pointed at a missing file)
    saved = models.MODELS
    models.MODELS = models.ModelManager([repo_root / "weights"], forced="weights/gone.safetensors")
    try:
        models.MODELS.start()
        models.MODELS.wait_idle(60)
        from emoclip_app.header import status_markdown
        from emoclip_app.state import Session

        text = status_markdown(Session()).replace("\\", "")  # Markdown escapes
        assert "No model is running" in text and "gone.safetensors" in text
    finally:
        models.MODELS = saved


def test_every_door_looks_for_weights_where_the_environment_says(
    refs, repo_root, tmp_path, monkeypatch, capsys
):
    """EMOCLIP_WEIGHTS_DIR reaches `emoclip models`, the app's manager and the batch driver (which
    hands its `ModelLocations` to the workers); the library itself reads no environment."""
    from emoclip.batch import run_batch
    from emoclip.batch.plan import batch_settings
    from emoclip.batch.worker import BatchWorker
    from emoclip.settings import ModelLocations
    from emoclip.weights.registry import resolve
    from emoclip_app import settings as app_settings
    from emoclip_app.models import ModelManager

    name, folder = "emoclip-synthetic-tiny", tmp_path / "elsewhere"
    folder.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(repo_root / "weights" / f"{name}{suffix}", folder)
    monkeypatch.setenv("EMOCLIP_WEIGHTS_DIR", str(folder))
    assert resolve(name, probe_network=False).kind == "missing"  # a library call: no overrides
    assert main(["models", "--json"]) == 0  # the CLI
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[name]["kind"] == "local" and rows[name]["location"].startswith(str(folder))
    manager = ModelManager([], locations=app_settings.locations())  # the app
    assert manager.sources()[name].location.startswith(str(folder))
    summary = run_batch([refs["clip"]], tmp_path / "out", model=name, limit=0)  # the driver
    assert summary.provenance["model_location"].startswith(str(folder))
    monkeypatch.delenv("EMOCLIP_WEIGHTS_DIR")  # a worker on a node without the variable
    settings = batch_settings() | {"precision": "fp32"}
    worker = BatchWorker(
        name, preset("dfew-7"), "key", settings=settings,
        locations=ModelLocations(weights_dirs=(str(folder),)),
    )  # fmt: skip
    assert worker.predictor.model.source.startswith(str(folder))
