"""The report files of ``python -m emoclip.train.evaluate``: per fold ``<tag>.json`` (metrics,
class names, counts and the run's settings), ``<tag>-confusion.png`` and ``<tag>-predictions.csv``;
over several folds ``<dataset>-<split>-summary.json`` (mean and standard deviation)."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

from emoclip.train.data_config import DataConfig
from emoclip.train.metrics import plot_confusion

SUMMARY_KEYS = ("war", "uar", "uar_true_classes")


def fold_tag(cfg: DataConfig, fold: int | None, split: str) -> str:
    """The report files' stem: ``<dataset>[-fold<k>]-<split>``."""
    return f"{cfg.dataset}{'' if fold is None else f'-fold{fold}'}-{split}"


def write_fold(out: Path, tag: str, result: dict[str, Any], header: dict[str, Any]) -> Path:
    """Write one fold's ``<tag>-predictions.csv``, ``<tag>-confusion.png`` and ``<tag>.json``.

    Args:
        out: The output folder (created).
        tag: The files' stem (`fold_tag`).
        result: `evaluate_dataset`'s result; its ``rows`` are taken out into the CSV.
        header: What the JSON states besides the metrics (model, dataset, fold, sampling, ...).

    Returns:
        The JSON file written.
    """
    out.mkdir(parents=True, exist_ok=True)
    names = result["class_names"]
    with open(out / f"{tag}-predictions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "true", "predicted"])
        for clip, t, p in result.pop("rows"):
            writer.writerow([clip, names[t] if t >= 0 else "", names[p]])
    plot_confusion(
        result["confusion"],
        names,
        out / f"{tag}-confusion.png",
        title=f"{tag}: WAR {100 * result['war']:.2f}  UAR {100 * result['uar']:.2f}",
    )
    path = out / f"{tag}.json"
    path.write_text(
        json.dumps({**header, "metrics": result}, indent=2, default=_json_default) + "\n",
        encoding="utf-8",
    )
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def write_summary(
    out: Path,
    cfg: DataConfig,
    split: str,
    per_fold: dict[int | None, dict[str, Any]],
    sampling: str | None,
    padding: str,
) -> Path:
    """Write ``<out>/<dataset>-<split>-summary.json``: mean, standard deviation and per-fold values
    of the `SUMMARY_KEYS` over the folds (NaN folds left out); returns the file."""
    stats: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        vals = [
            m[key]
            for m in per_fold.values()
            if isinstance(m.get(key), float) and not math.isnan(m[key])
        ]
        if vals:
            stats[key] = {
                "mean": statistics.fmean(vals),
                "std": statistics.pstdev(vals),
                "folds": vals,
            }
    path = out / f"{cfg.dataset}-{split}-summary.json"
    path.write_text(
        json.dumps(
            {
                "dataset": cfg.dataset,
                "split": split,
                "folds": list(per_fold),
                "eval_sampling": sampling,
                "distributed_padding": padding,
                "metrics": stats,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return path
