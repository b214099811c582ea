"""Provenance in every result, and batch resume that cannot serve stale rows (issue #19, 2-3).

The resume rule is checked on a results folder written by a real batch run: an unchanged rerun
analyses nothing; a replaced weights file (a real rerun), another ``EMOCLIP_HUB_REVISION``, an
edited class set and changed settings each make every input pending again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hub_fixtures import populate_cache

import emoclip
from emoclip.batch.plan import batch_settings, plan_batch
from emoclip.batch.store import ResultsStore
from emoclip.classes import ClassSet, preset
from emoclip.inference.predictor import EmotionPredictor
from emoclip.provenance import DIGEST_FIELDS, Provenance, class_set_sha256
from emoclip.settings import ModelLocations
from emoclip.testing.media import moving_face_frames, write_video
from emoclip.weights.files import save_checkpoint
from emoclip.weights.refs import identify_model
from emoclip.weights.registry import WeightsNotFoundError

pytestmark = pytest.mark.timeout(600)


def _provenance(**change) -> Provenance:
    base = dict(
        model="m",
        model_source="file",
        model_location="/a/m.safetensors",
        weights_sha256="0" * 64,
        hub_revision=None,
        class_set="s",
        class_set_sha256="1" * 64,
        settings={"face_fallback": "center"},
    )
    return Provenance(**(base | change))


def test_digest_is_stable_and_changes_with_every_recorded_field():
    p = _provenance()
    assert p.digest() == _provenance().digest() and len(p.digest()) == 64
    assert json.loads(json.dumps(p.as_dict())) == p.as_dict()
    changes = {
        "model": "other",
        "weights_sha256": "2" * 64,
        "hub_revision": "a" * 40,
        "class_set": "t",
        "class_set_sha256": "3" * 64,
        "package_version": "9.9.9",
        "settings": {"face_fallback": "skip"},
    }
    assert set(changes) == set(DIGEST_FIELDS)
    for name, value in changes.items():
        assert _provenance(**{name: value}).digest() != p.digest(), name
    # where the same weights were read from is not part of the identity
    same = _provenance(model_source="hub-cache", model_location="/elsewhere/m.safetensors")
    assert same.digest() == p.digest()


def test_class_set_hash_covers_names_descriptions_and_compounds():
    base = preset("dfew-7")
    h = class_set_sha256(base)
    assert class_set_sha256(preset("dfew-7")) == h
    edited = base.with_class(base.names[0], "a face that beams")
    assert class_set_sha256(edited) != h
    renamed = base.renamed(base.names[1], "glum")
    assert class_set_sha256(renamed) != h
    compound = base.with_compound("bittersweet", [base.names[0], base.names[1]])
    assert class_set_sha256(compound) != h
    assert class_set_sha256(ClassSet.from_dict(base.to_dict(), name="x")) == h  # name aside


def test_prediction_json_csv_and_sidecar_record_the_provenance(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model.state_dict(), tiny_model.config, tmp_path / "t.safetensors")
    model = emoclip.load_model(path)
    predictor = EmotionPredictor(model, precision="fp32")
    frames = list(moving_face_frames(8, size=(240, 320)))
    pred = predictor.predict(frames, preset("dfew-7"), fps=8)
    data = pred.to_dict()["provenance"]
    assert data["model"] == str(path.resolve()) and data["model_source"] == "file"
    assert data["weights_sha256"] == identify_model(path).weights_sha256
    assert data["class_set"] == "dfew-7"
    assert data["class_set_sha256"] == class_set_sha256(preset("dfew-7"))
    assert data["package_version"] == emoclip.__version__
    assert data["settings"]["precision"] == "fp32"
    assert data["settings"]["face_fallback"] == "center"
    assert data["digest"] == pred.provenance.digest()
    text = pred.to_csv(tmp_path / "r.csv")
    assert text.startswith("video,scope")  # the CSV stays a plain table
    side = json.loads((tmp_path / "r.provenance.json").read_text())
    assert side["digest"] == data["digest"] and side["weights_sha256"] == data["weights_sha256"]
    other = EmotionPredictor(model, precision="fp32", min_face_score=0.7)
    assert other.score(predictor.encode(frames, fps=8)).provenance.digest() != data["digest"]


# ----------------------------------------------------------------------------- batch resume


@pytest.fixture(scope="module")
def collection(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("prov")
    weights = save_checkpoint(tiny_model.state_dict(), tiny_model.config, root / "w.safetensors")
    clips = root / "clips"
    clips.mkdir()
    for i, n in enumerate((8, 12)):
        write_video(clips / f"c{i}.webm", moving_face_frames(n, size=(240, 320)), fps=8)
    return {"root": root, "weights": weights, "clips": clips}


def _plan(collection, out, **kw):
    settings = kw.pop("settings", None) or batch_settings()
    return plan_batch(
        [collection["clips"]],
        ResultsStore(out),
        model=kw.pop("model", str(collection["weights"])),
        classes=kw.pop("classes", None),
        settings=settings,
        **kw,
    )


@pytest.mark.slow
def test_resume_reanalyses_exactly_when_the_provenance_changes(
    collection, tmp_path, monkeypatch, tiny_model
):
    from emoclip.batch import read_results, run_batch

    monkeypatch.setenv("EMOCLIP_PRECISION", "fp32")
    out = tmp_path / "out"
    kw = dict(model=str(collection["weights"]), workers=1, num_cpus=1)
    first = run_batch([collection["clips"]], out, **kw)
    assert first.done == 2 and first.errors == 0
    rows = read_results(out).to_pylist()
    assert {r["config_key"] for r in rows} == {first.config_key}
    assert json.loads(rows[0]["provenance"])["weights_sha256"] == first.provenance["weights_sha256"]

    again = run_batch([collection["clips"]], out, **kw)  # unchanged: nothing analysed, counted
    assert (again.done, again.skipped, again.workers) == (0, 2, 0)

    # an edited class set, changed settings: every input pending again
    edited = preset("dfew-7").with_class("happiness", "a face that beams")
    assert _plan(collection, out, classes=edited).pending.num_rows == 2
    monkeypatch.setenv("EMOCLIP_MIN_FACE_SCORE", "0.7")
    assert _plan(collection, out).pending.num_rows == 2
    monkeypatch.delenv("EMOCLIP_MIN_FACE_SCORE")
    assert _plan(collection, out, settings=batch_settings("skip")).pending.num_rows == 2
    assert _plan(collection, out).pending.num_rows == 0

    # the weights file replaced in place (same name, other tensors): a real rerun re-analyses
    torch.manual_seed(1)
    retrained = emoclip.load_model("test-emoclip-tiny")
    save_checkpoint(retrained.state_dict(), retrained.config, collection["weights"])
    third = run_batch([collection["clips"]], out, **kw)
    assert third.done == 2 and third.skipped == 0
    assert third.provenance["weights_sha256"] != first.provenance["weights_sha256"]
    by_key: dict[str, list] = {}
    for r in read_results(out).to_pylist():
        by_key.setdefault(r["config_key"], []).append(r["top"])
    assert set(by_key) == {first.config_key, third.config_key}  # old rows kept, under their key
    assert (run_batch([collection["clips"]], out, **kw)).done == 0


def test_a_new_hub_revision_makes_every_input_pending(collection, tmp_path, monkeypatch):
    """A registry model served from the Hub cache: the rows of revision A are not served for B."""
    from emoclip.weights import hub

    cache = tmp_path / "hub"
    files = {"emoclip-vitb32.safetensors": collection["weights"]}
    files["emoclip-vitb32.json"] = collection["weights"].with_suffix(".json")
    populate_cache(cache, "someone/emoclip", files)
    snapshots = cache / "models--someone--emoclip" / "snapshots"
    commit_a = next(snapshots.iterdir()).name
    commit_b = "b" * 40
    (snapshots / commit_b).mkdir()
    for name, src in files.items():
        (snapshots / commit_b / name).write_bytes(Path(src).read_bytes())
    monkeypatch.setattr(hub, "cached_file", _cached_in(cache))
    # the driver's door: the variables, read by ModelLocations.from_env (as run_batch does)
    monkeypatch.setenv("EMOCLIP_HUB_REPO", "someone/emoclip")
    monkeypatch.setenv("EMOCLIP_HUB_REVISION", commit_a)
    out = tmp_path / "out"
    at_a = ModelLocations.from_env()
    plan = _plan(collection, out, model="emoclip-vitb32", locations=at_a)
    assert plan.provenance.hub_revision == commit_a and plan.pending.num_rows == 2
    assert plan.provenance.model_source == "hub-cache" and plan.locations == at_a  # to workers
    _write_rows(out, plan)  # what a finished run under revision A leaves
    assert _plan(collection, out, model="emoclip-vitb32", locations=at_a).pending.num_rows == 0
    # the value path: a script's ModelLocations with revision B, whatever the environment says
    at_b = at_a.replace(hub_revisions={"emoclip-vitb32": commit_b})
    newer = _plan(collection, out, model="emoclip-vitb32", locations=at_b)
    assert newer.provenance.hub_revision == commit_b and newer.pending.num_rows == 2
    # same bytes under another revision: still another provenance (the revision is recorded)
    assert newer.provenance.weights_sha256 == plan.provenance.weights_sha256
    # the library itself reads no environment: without a value, no Hub repo is configured
    with pytest.raises(WeightsNotFoundError, match="no repo configured"):
        _plan(collection, out, model="emoclip-vitb32")


def _cached_in(cache: Path):
    from emoclip.weights import hub

    original = hub.cached_file

    def cached_file(repo_id, filename, *, revision=None, cache_dir=None):
        return original(repo_id, filename, revision=revision, cache_dir=cache_dir or cache)

    return cached_file


def _write_rows(out: Path, plan) -> None:
    import pyarrow as pa

    from emoclip.batch.schema import input_schema, result_fields

    rows = []
    for row in plan.pending.to_pylist():
        rows.append(row | {"config_key": plan.key, "provenance": "{}", "classes": []})
    schema = pa.schema(list(input_schema()) + result_fields(32))
    store = ResultsStore(out)
    store.create()
    store.write(pa.Table.from_pylist(rows, schema=schema), "results", "part-x-000000.parquet")


def test_a_model_that_cannot_be_found_stops_the_batch_before_any_work(tmp_path, collection):
    from emoclip.batch import run_batch
    from emoclip.weights.refs import ModelRefError
    from emoclip.weights.registry import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        run_batch([collection["clips"]], tmp_path / "a", model=str(tmp_path / "gone.safetensors"))
    with pytest.raises(ModelRefError, match="registry name"):
        run_batch([collection["clips"]], tmp_path / "b", model="no such model!")
    with pytest.raises(WeightsNotFoundError, match="emoclip-vitb32"):
        run_batch([collection["clips"]], tmp_path / "c", model="emoclip-vitb32")
    assert not any(os.path.exists(tmp_path / n) for n in "abc")
