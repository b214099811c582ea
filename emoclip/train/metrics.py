"""Evaluation metrics: WAR, UAR, confusion matrices and their plot (numpy; matplotlib lazily).

The definitions follow the authors' evaluation (reference.md §10), but as fractions, not %:

* **WAR** (weighted average recall) is the overall accuracy ``mean(y_pred == y_true)``.
* **UAR** (unweighted average recall) is the mean per-class recall over the **sorted union of the
  labels that occur in y_true or y_pred**, exactly
  ``sklearn.metrics.confusion_matrix(y_true, y_pred, normalize="true").diagonal().mean()``:
  a class that is only ever predicted contributes a recall of 0. In a leave-one-class-out test
  (one true class) UAR is therefore that class's recall divided by the number of distinct labels
  seen. `evaluate_predictions` also reports ``uar_true_classes``, the mean recall over the classes
  that occur in y_true only, which is the textbook UAR.

Distributed evaluation (several processes): the authors' test loader uses torch's
``DistributedSampler`` (``drop_last=False``), which pads the index list to a multiple of the
number of processes W by repeating its first ``ceil(N/W)*W - N`` clips. Their WAR counts those
duplicates' correct predictions in the numerator but divides by ``len(test_dataset)`` = N, and their
UAR is computed on the all-gathered arrays, duplicates included. `emoclip.train.scoring` keeps
that as the default (``padding="authors"``, via `evaluate_predictions`'s ``war_denominator``) and
offers ``padding="drop"`` (each clip counted exactly once); with one process both are the same.

Labels are integer class indices. scikit-learn is not needed (the tests compare against it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "evaluate_predictions", "plot_confusion", "uar", "war"]


def _as_labels(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both label vectors as 1-D int64 arrays of the same length."""
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    for name, a in (("y_true", t), ("y_pred", p)):
        integral = a.size == 0 or np.issubdtype(a.dtype, np.integer)
        if not integral and not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices")
    return t.astype(np.int64), p.astype(np.int64)


def war(y_true: Any, y_pred: Any) -> float:
    """Weighted average recall: the fraction of correct predictions (overall accuracy).

    Args:
        y_true: True class indices, shape (N,) (array-like or tensor on CPU).
        y_pred: Predicted class indices, shape (N,).

    Returns:
        A fraction in [0, 1]; NaN when N == 0.
    """
    t, p = _as_labels(y_true, y_pred)
    return float(np.mean(t == p)) if t.size else math.nan


def uar(y_true: Any, y_pred: Any) -> float:
    """Unweighted average recall over the sorted union of labels in `y_true` and `y_pred`.

    Equal to ``sklearn.metrics.confusion_matrix(y_true, y_pred, normalize="true")
    .diagonal().mean()``: a label that only occurs in `y_pred` adds a class of recall 0.

    Args:
        y_true: True class indices, shape (N,).
        y_pred: Predicted class indices, shape (N,).

    Returns:
        A fraction in [0, 1]; NaN when N == 0.
    """
    t, p = _as_labels(y_true, y_pred)
    if not t.size:
        return math.nan
    labels = np.union1d(t, p)  # sorted union, as sklearn's unique_labels
    ti = np.searchsorted(labels, t)
    pi = np.searchsorted(labels, p)
    hits = np.bincount(ti[ti == pi], minlength=labels.size)
    support = np.bincount(ti, minlength=labels.size)
    recall = np.divide(hits, support, out=np.zeros(labels.size), where=support > 0)
    return float(recall.mean())


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Count matrix, rows = true class, columns = predicted class.

    Args:
        y_true: True class indices in ``[0, num_classes)``, shape (N,).
        y_pred: Predicted class indices in ``[0, num_classes)``, shape (N,).
        num_classes: C.

    Returns:
        (C, C) int64 counts; ``m[i, j]`` = number of samples of class i predicted as j.

    Raises:
        ValueError: A label outside ``[0, num_classes)`` (e.g. -1 for "unknown": drop those
            samples first, as `evaluate_predictions` does).
    """
    t, p = _as_labels(y_true, y_pred)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes}): {np.unique(a)}")
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _row_normalize(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum; empty rows stay 0 (as sklearn's ``normalize="true"``)."""
    m = np.asarray(matrix, dtype=np.float64)
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)


def evaluate_predictions(
    y_true: Any, y_pred: Any, class_names: Sequence[str], *, war_denominator: int | None = None
) -> dict[str, Any]:
    """All the numbers of one evaluation, JSON-ready.

    Samples whose true label is negative (unknown, e.g. an unlabelled manifest row) are left out
    and counted in ``"unlabelled"``.

    Args:
        y_true: True class indices, shape (N,); indices into `class_names`, or < 0 for unknown.
        y_pred: Predicted class indices into `class_names`, shape (N,).
        class_names: Names of the C classes, in index order.
        war_denominator: Divide the number of correct labelled predictions by this instead of
            their count: the authors' WAR under DistributedSampler padding (duplicates in the
            numerator, ``len(test_dataset)`` below; the module docstring). None: accuracy.

    Returns:
        ``{"war", "uar", "uar_true_classes", "per_class_recall", "confusion", "support",
        "num_samples", "unlabelled"}``: ``war``/``uar`` as `war`/`uar` (fractions; NaN when no
        labelled sample), ``uar_true_classes`` the mean recall over classes present in y_true,
        ``per_class_recall`` and ``support`` keyed by class name (recall None for a class
        without samples), ``confusion`` the (C, C) count matrix as nested lists.
    """
    names = list(class_names)
    t, p = _as_labels(y_true, y_pred)
    keep = t >= 0
    t, p = t[keep], p[keep]
    matrix = confusion_matrix(t, p, len(names))
    support = matrix.sum(axis=1)
    recalls = [float(matrix[i, i] / s) if s else None for i, s in enumerate(support)]
    present = [r for r in recalls if r is not None]
    if war_denominator is None:
        war_value = war(t, p)
    else:
        war_value = float(np.sum(t == p) / war_denominator) if war_denominator > 0 else math.nan
    return {
        "war": war_value,
        "uar": uar(t, p),
        "uar_true_classes": float(np.mean(present)) if present else math.nan,
        "per_class_recall": dict(zip(names, recalls)),
        "confusion": matrix.tolist(),
        "support": {name: int(s) for name, s in zip(names, support)},
        "num_samples": int(t.size),
        "unlabelled": int((~keep).sum()),
    }


def plot_confusion(
    matrix: Any,
    class_names: Sequence[str],
    path: str | Path,
    *,
    normalize: bool = True,
    title: str = "",
) -> Path:
    """Save a confusion matrix as a PNG heat map with the value in every cell.

    Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend change);
    matplotlib is imported here, on first use.

    Args:
        matrix: (C, C) counts, rows = true class, columns = predicted class.
        class_names: C names, in index order.
        path: Output file (parent folders are created).
        normalize: Show each row divided by its sum (per-class recall on the diagonal).
        title: Figure title.

    Returns:
        The path written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - matplotlib is in the [train] extra
        raise ImportError("plot_confusion needs matplotlib: pip install 'emoclip[train]'") from e

    counts = np.asarray(matrix)
    n = len(class_names)
    if counts.shape != (n, n):
        raise ValueError(f"matrix must be ({n}, {n}) for {n} class names, got {counts.shape}")
    values = _row_normalize(counts) if normalize else counts.astype(np.float64)
    side = max(4.0, 0.6 * n + 2.0)
    fig = Figure(figsize=(side + 1.0, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fontsize = 9 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            text = f"{v:.2f}" if normalize else f"{round(v)}"
            colour = "white" if v > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
