"""Hostile class sets, and property-based tests of text handling.

Entry points attacked: `ClassSet.parse` / `ClassSet.load` with the texts of
`hostile_cases.CLASS_TEXTS` (refused with a `ClassSetError` naming the problem, or kept verbatim),
`EmotionPredictor.score` and the JSON/CSV exports with hostile class names, ``emoclip predict
--classes``; then, property-based, the tokenizer, the text-embedding cache, scoring any valid
class set, the prediction exports and class-set files of any bytes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_cases import (
    CLASS_TEXTS,
    PROPERTY,
    battery_encoding,
    battery_predictor,
    save_tiny_weights,
    video_case_files,
)
from hypothesis import assume, given, strategies as st

import emoclip
from emoclip.classes import ClassSet, ClassSetError
from emoclip.cli import main
from emoclip.results import FaceSummary, Prediction, Timeline, TrackPrediction


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


@pytest.fixture(scope="module")
def encoding(predictor):
    return battery_encoding(predictor)


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
        code = main(
            ["predict", str(good), "--model", str(weights), "--quiet", "--classes", str(path)]
        )
        err = capsys.readouterr().err
        assert code == 1 and f"emoclip: error: {path.name}" in err, err
        assert CLASS_TEXTS[name][2].lower() in err.lower() and "Traceback" not in err
    for name in ("HTML and script", "emoji", "CSV and formula injection"):
        path = tmp_path / "c.yaml"
        path.write_text(CLASS_TEXTS[name][0], encoding="utf-8")
        out_json = tmp_path / "o.json"
        code = main(
            [
                "predict",
                str(good),
                "--model",
                str(weights),
                "--quiet",
                "--classes",
                str(path),
                "--json",
                str(out_json),
            ]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        assert list(json.loads(out_json.read_text())["probabilities"]) == ClassSet.load(path).names
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("classes:\n  joie: un sourire \xe9clatant\n".encode("latin-1"))
    code = main(
        ["predict", str(good), "--model", str(weights), "--quiet", "--classes", str(latin1)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "'latin1.yaml' is not UTF-8 text" in err, err


# ---------------------------------------------------------------------------------------------
# Property-based: text handling
# ---------------------------------------------------------------------------------------------
LONG_TEXT = st.text(min_size=1000, max_size=3000)


@PROPERTY
@given(st.text() | LONG_TEXT)
def test_property_tokenizer_never_crashes(text):
    tokens = emoclip.tokenize(text)
    assert tokens.shape == (1, 77) and tokens.dtype == torch.int64
    assert int(tokens[0, 0]) != 0  # <start>
    n = emoclip.model.tokenizer.count_tokens(text)
    assert n >= 2
    end = (tokens[0] == 49407).nonzero()  # <end>: the text's last position
    assert len(end) == 1 and int(end[0, 0]) + 1 == min(n, 77)
    assert emoclip.model.tokenizer.is_truncated(text) == (n > 77)


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
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t"),
    min_size=1,
    max_size=1000,
).filter(lambda t: t.strip())
NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=64).filter(
    lambda t: t.strip()
)


@PROPERTY
@given(
    st.lists(st.tuples(NAME, st.lists(DESCRIPTION, min_size=1, max_size=3)), min_size=1, max_size=5)
)
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
        model="m",
        classes=list(names),
        probabilities=dict(zip(names, probs.tolist())),
        timeline=Timeline(np.array([0.0, 1.0]), np.array([2.0, 3.0]), windows),
        tracks=[TrackPrediction(0, 3, 0.0, 2.5, dict(zip(names, probs.tolist())), True)],
        embedding=np.ones(4, np.float32) / 2,
        faces=FaceSummary(4, 3, 1, [1.5], 1, "center"),
        timings={"total": 0.1},
        video={"name": video_name, "duration": 3.0},
        warnings=["w"],
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
