"""`emoclip.train.synthetic_report` (the toy model card's figures) with a stand-in predictor that
recognises a clip only when its true class is described by a paraphrase: the test figures must
then come out 0 against the plain descriptions and 1 against the paraphrased ones."""

from __future__ import annotations

import csv
import types
from pathlib import Path

import pytest

from emoclip.train import synthetic as syn, synthetic_report


class ParaphraseOnlyPredictor:
    """Reads the true label from the manifest; predicts it when its description is a paraphrase,
    else "neutral" (a seen class, so the authors' UAR gets an extra label of recall 0)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.truth: dict[str, str] = {}
        self.encoded: list[str] = []

    def encode(self, path: str) -> str:
        if path not in self.truth:  # the clips are written after the predictor is made
            for manifest in self.root.glob("*/manifest.csv"):
                with open(manifest, newline="", encoding="utf-8") as f:
                    for row in csv.DictReader(f):
                        self.truth[str(manifest.parent / row["path"])] = row["label"]
        self.encoded.append(path)
        return path

    def score(self, encoding: str, classes) -> types.SimpleNamespace:
        label = self.truth[encoding]
        paraphrases = set(syn.paraphrase_descriptions().values())
        texts = {c.name: set(c.descriptions) for c in classes.classes}
        top = label if texts[label] & paraphrases else "neutral"
        return types.SimpleNamespace(probabilities={n: float(n == top) for n in classes.names})


def test_report_scores_plain_and_paraphrased_descriptions(tmp_path, monkeypatch):
    made: list[ParaphraseOnlyPredictor] = []

    def fake_predictor(model, **kwargs):
        made.append(ParaphraseOnlyPredictor(tmp_path))
        return made[-1]

    monkeypatch.setattr("emoclip.weights.factory.load_model", lambda path: None)
    monkeypatch.setattr("emoclip.inference.predictor.EmotionPredictor", fake_predictor)
    out = synthetic_report.report(
        "w.safetensors", seeds=(5,), sizes=(32,), test_clips=8, all_clips=6, work_dir=tmp_path
    )
    entry = out["results"]["32px"]["5"]
    assert entry["test_uar"] == 0.0 and entry["test_uar_authors"] == 0.0
    assert entry["paraphrase_uar"] == 1.0 and entry["paraphrase_uar_authors"] == 1.0
    assert set(entry["paraphrase_recall"]) <= set(syn.TEST) and set(entry["paraphrase_recall"])
    # clips of all 12 classes: only "neutral" right, every other true class has recall 0
    assert entry["all_uar_authors"] < 0.5
    assert out["mean"]["32px"]["paraphrase_uar"] == 1.0 and out["seeds"] == [5]
    # each clip is encoded once however many class sets score it
    assert len(made) == 1 and len(made[0].encoded) == len(set(made[0].encoded)) == 8 + 6
    labels = {made[0].truth[p] for p in made[0].encoded[:8]}
    assert labels <= set(syn.TEST)


def test_command_line_rejects_missing_weights(tmp_path, capsys):
    with pytest.raises(SystemExit):
        synthetic_report.main([str(tmp_path / "none.safetensors")])
    assert "no such weights file" in capsys.readouterr().err
