"""The shipped toy model (weights/emoclip-synthetic-tiny.safetensors) through the user's path:
fresh synthetic clips of the test classes (never trained on, never tuned on) at the generator's
default size (128 px, 32 frames, 8 fps, VP8 webm) -> ``emoclip predict --classes classes_all.yaml
--json`` -> zero-shot UAR of the test classes; and the paraphrase report of
`emoclip.train.synthetic_report` (the model card's figures) on a few clips."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from emoclip import cli
from emoclip.train import synthetic, synthetic_report
from emoclip.train.metrics import evaluate_predictions

pytestmark = pytest.mark.slow

SEED = 424242  # never a training seed (training draws from train.seed=0 streams) nor a report seed
CLIPS = 24  # 6 per test class on average
MIN_TEST_UAR = 0.80  # measured 0.99-1.00 per seed of 48 clips (README, "The offline model")
CHANCE = 1 / len(synthetic.CLASSES)  # each clip is scored against all 12 descriptions


@pytest.fixture(scope="module")
def test_clips(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("test-classes")
    assert (
        synthetic.main(
            ["--out", str(out), "--clips", str(CLIPS), "--seed", str(SEED), "--split", "test"]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def weights(repo_root) -> Path:
    path = repo_root / "weights" / "emoclip-synthetic-tiny.safetensors"
    assert path.is_file(), path
    return path


def predict(clips: Path, weights: Path, out: Path, *extra: str) -> dict[str, dict]:
    code = cli.main(
        ["predict", str(clips), "--model", str(weights), *extra, "--json", str(out), "--quiet"]
    )
    assert code == 0
    data = json.loads(out.read_text())
    return {r["video"]["name"]: r for r in (data if isinstance(data, list) else [data])}


def test_test_classes_are_recognised_zero_shot(test_clips, weights, tmp_path):
    results = predict(
        test_clips / "clips",
        weights,
        tmp_path / "pred.json",
        "--classes",
        str(test_clips / "classes_all.yaml"),
    )
    rows = list(csv.DictReader(open(test_clips / "manifest.csv", encoding="utf-8")))
    names = list(synthetic.CLASSES)
    assert {r["label"] for r in rows} == set(synthetic.TEST) and len(results) == CLIPS
    truth = [names.index(r["label"]) for r in rows]
    pred = [names.index(results[Path(r["path"]).name]["top"]) for r in rows]
    metrics = evaluate_predictions(truth, pred, names)
    # textbook UAR over the 4 test classes, each scored against all 12 descriptions
    recall = {k: v for k, v in metrics["per_class_recall"].items() if v is not None}
    assert metrics["uar_true_classes"] >= MIN_TEST_UAR, recall


def test_paraphrase_report_scores_the_test_clips_against_paraphrases(weights, tmp_path):
    out = synthetic_report.report(
        weights, seeds=(SEED,), sizes=(64,), test_clips=12, all_clips=0, work_dir=tmp_path
    )
    entry = out["results"]["64px"][str(SEED)]
    assert set(entry["test_recall"]) <= set(synthetic.TEST) and set(
        entry["paraphrase_recall"]
    ) <= set(synthetic.TEST)
    for key in ("test_uar", "test_uar_authors", "paraphrase_uar", "paraphrase_uar_authors"):
        assert 0.0 <= entry[key] <= 1.0 and out["mean"]["64px"][key] == entry[key]
    assert (
        entry["test_uar_authors"] <= entry["test_uar"]
    )  # extra (wrongly predicted) labels only lower it
    # the report really used the paraphrased class set: it is written beside the clips
    doc = (tmp_path / f"64px-{SEED}-test" / "classes_all_paraphrased.yaml").read_text(
        encoding="utf-8"
    )
    assert all(text.split(":")[0] in doc for text in synthetic.paraphrase_descriptions().values())
    assert entry["test_uar"] >= MIN_TEST_UAR - 0.15


def test_without_classes_the_models_inline_set_is_used(test_clips, weights, tmp_path):
    clip = sorted((test_clips / "clips").glob("*.webm"))[0]
    result = predict(clip, weights, tmp_path / "one.json")[clip.name]
    assert sorted(result["classes"]) == sorted(synthetic.CLASSES) and len(result["classes"]) == 12


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how likely chance alone gets k or more of n right."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_paraphrases_are_not_recognised_above_chance(weights, tmp_path):
    """The docs' claim (README "The offline model", the About tab, weights/README.md): the toy
    recognises the test classes from their plain descriptions but not from paraphrases in words
    its captions never use. Checked on 48 fresh clips of a seed nothing was chosen on (SEED), at
    the generator's default size. Measured once, before this test was written (2026-12-07):
    test UAR 1.00, paraphrase UAR 0.05 (3 of 48 clips, all delight), chance 1/12 = 0.08. If the
    toy ever learns the paraphrases, this fails and the docs must change with it."""
    out = synthetic_report.report(
        weights, seeds=(SEED,), sizes=(128,), test_clips=48, all_clips=0, work_dir=tmp_path
    )
    entry = out["results"]["128px"][str(SEED)]
    assert entry["test_uar"] >= MIN_TEST_UAR  # the plain descriptions are recognised
    rows = list(csv.DictReader(open(tmp_path / f"128px-{SEED}-test" / "manifest.csv")))
    per_class = Counter(row["label"] for row in rows)
    right = sum(round(r * per_class[c]) for c, r in entry["paraphrase_recall"].items())
    # not above chance: chance alone gets at least this many right with probability >= 5 %
    assert binomial_tail(right, len(rows), CHANCE) >= 0.05, (right, entry["paraphrase_recall"])
    assert entry["paraphrase_uar"] <= entry["test_uar"] - 0.5
