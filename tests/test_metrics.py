"""Evaluation metrics: WAR/UAR by hand and against scikit-learn, confusion matrices, the plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from emoclip.train.metrics import confusion_matrix, evaluate_predictions, plot_confusion, uar, war


def test_war_and_uar_by_hand():
    y_true, y_pred = [0, 0, 1, 1], [0, 1, 1, 1]
    assert war(y_true, y_pred) == 0.75
    assert uar(y_true, y_pred) == (0.5 + 1.0) / 2
    # imbalanced: WAR follows the big class, UAR weighs classes equally
    y_true, y_pred = [0] * 8 + [1, 1], [0] * 8 + [0, 0]
    assert war(y_true, y_pred) == 0.8 and uar(y_true, y_pred) == 0.5
    assert war([], []) != war([], [])  # NaN for no samples
    assert math.isnan(uar([], []))


def test_uar_is_over_the_union_of_true_and_predicted_labels():
    # Leave-one-out test set: every true label is 2; class 5 is only predicted (a 0 row).
    y_true, y_pred = [2, 2, 2, 2], [2, 2, 5, 2]
    assert war(y_true, y_pred) == 0.75
    assert uar(y_true, y_pred) == 0.75 / 2
    assert uar([2, 2], [2, 2]) == 1.0
    assert uar([3, 3], [0, 1]) == 0.0  # union {0, 1, 3}: all recalls 0
    ev = evaluate_predictions(y_true, y_pred, [f"c{i}" for i in range(6)])
    assert ev["uar"] == 0.375 and ev["uar_true_classes"] == 0.75


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_agrees_with_sklearn_on_random_cases():
    from sklearn import metrics

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, c = int(rng.integers(1, 60)), int(rng.integers(1, 12))
        y_true = rng.integers(0, c, n)
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, c + 2, n))  # extra labels
        expected = metrics.confusion_matrix(y_true, y_pred, normalize="true").diagonal().mean()
        assert uar(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
        assert war(y_true, y_pred) == pytest.approx(metrics.accuracy_score(y_true, y_pred))
        k = c + 2
        assert np.array_equal(
            confusion_matrix(y_true, y_pred, k),
            metrics.confusion_matrix(y_true, y_pred, labels=list(range(k))),
        )


def test_inputs_as_tensors_and_errors():
    t, p = torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1])
    assert war(t, p) == pytest.approx(2 / 3) and uar(t, p) == 0.5
    with pytest.raises(ValueError, match="length"):
        war([0, 1], [0])
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="integer"):
        uar([0.5, 1.0], [0, 1])


def test_evaluate_predictions():
    names = ["happiness", "sadness", "anger"]
    y_true = [0, 0, 0, 1, 1, -1]  # the last sample is unlabelled: left out
    y_pred = [0, 0, 1, 1, 0, 2]
    ev = evaluate_predictions(y_true, y_pred, names)
    assert ev["war"] == pytest.approx(3 / 5)
    assert ev["uar"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert ev["per_class_recall"] == {
        "happiness": pytest.approx(2 / 3),
        "sadness": 0.5,
        "anger": None,
    }
    assert ev["support"] == {"happiness": 3, "sadness": 2, "anger": 0}
    assert ev["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert ev["num_samples"] == 5 and ev["unlabelled"] == 1
    json.dumps(ev)  # JSON-ready


def test_plot_confusion_writes_png(tmp_path: Path):
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 4)  # class 3 has no samples
    names = ["happiness", "sadness", "anger", "surprise"]
    for normalize in (True, False):
        path = plot_confusion(
            m, names, tmp_path / "out" / f"cm_{normalize}.png", normalize=normalize, title="fold 1"
        )
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000
    with pytest.raises(ValueError, match="class names"):
        plot_confusion(m, names[:3], tmp_path / "bad.png")


# ---- DistributedSampler padding (the authors' test loader under torchrun) -------------------------


@pytest.mark.parametrize("n,world", [(5, 2), (7, 3), (6, 3), (1, 4), (2, 5)])
def test_authors_padding_shards_as_distributed_sampler(n, world):
    from torch.utils.data import DistributedSampler

    from emoclip.train.scoring import shard_indices

    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
        assert shard_indices(n, world, rank, "authors") == list(sampler)
    dropped = sorted(i for r in range(world) for i in shard_indices(n, world, r, "drop"))
    assert dropped == list(range(n))  # each clip exactly once
    with pytest.raises(ValueError, match="padding"):
        shard_indices(n, world, 0, "pad")


def _gathered(n, world, padding, targets, preds):
    from emoclip.train.scoring import shard_indices

    parts = []
    for rank in range(world):
        idx = shard_indices(n, world, rank, padding)
        parts.append(
            (idx, [f"c{i}" for i in idx], [[targets[i]] for i in idx], [preds[i] for i in idx])
        )
    return parts


def test_authors_padding_counts_duplicates_as_their_war_and_uar():
    from emoclip.classes import preset
    from emoclip.train.scoring import score_gathered

    scored = preset("dfew-7")
    names = [c.name for c in scored.classes]
    targets, preds = [0, 1, 1, 2, 2], [0, 0, 1, 2, 2]  # clip 0 right, clip 1 wrong
    authors = score_gathered(_gathered(5, 4, "authors", targets, preds), names, scored)
    # DistributedSampler pads 5 -> 8 with clips 0, 1, 2: correct = 4 + clip 0 + clip 2 = 6 over 5 clips
    assert authors["padded_duplicates"] == 3 and authors["war"] == pytest.approx(6 / 5)
    padded_t, padded_p = targets + targets[:3], preds + preds[:3]
    assert authors["uar"] == pytest.approx(
        uar(padded_t, padded_p)
    )  # recall of class 1: 1/3, not 1/2
    assert authors["num_samples"] == 8 and len(authors["rows"]) == 5  # predictions listed once
    dropped = score_gathered(_gathered(5, 4, "drop", targets, preds), names, scored)
    assert dropped["padded_duplicates"] == 0 and dropped["war"] == pytest.approx(4 / 5)
    assert dropped["uar"] == pytest.approx(uar(targets, preds)) and dropped["num_samples"] == 5
    one = score_gathered(_gathered(5, 1, "authors", targets, preds), names, scored)
    assert (one["war"], one["uar"]) == (dropped["war"], dropped["uar"])  # one process: no padding


def test_war_denominator_is_the_authors_len_dataset():
    ev = evaluate_predictions([0, 1, 0], [0, 1, 0], ["a", "b"], war_denominator=2)
    assert ev["war"] == 1.5 and ev["uar"] == 1.0
    assert math.isnan(evaluate_predictions([0], [0], ["a"], war_denominator=0)["war"])
