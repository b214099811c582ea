"""Zero-shot evaluation from the command line: UAR and WAR per dataset and fold.

Command line::

    python -m emoclip.train.evaluate --model NAME|PATH --data.dataset dfew --data.root DIR \\
        [--data.fold 1|1,2,3|all] [--classes YAML|PRESET] [--split test] --out DIR

Any `DataConfig` field can be given as ``--data.NAME VALUE`` (or ``data.NAME=VALUE``). For every
fold it writes ``<out>/<dataset>[-fold<k>]-<split>.json`` (metrics, class names, counts),
``...-confusion.png`` and ``...-predictions.csv``; with several folds also
``<out>/<dataset>-<split>-summary.json`` (mean and standard deviation over folds) (`eval_report`).

Scoring follows the authors (reference.md §4, §10; `scoring`): each class is embedded from its
descriptions, the prediction is the argmax of ``softmax(exp(logit_scale) * cos(video, class))``,
WAR is the accuracy and UAR the mean recall over the union of true and predicted labels
(`emoclip.train.metrics`). Compound classes and unmatched labels: see `scoring`.

Frame sampling (``--eval-sampling``, i.e. ``data.eval_sampling``): ``consecutive`` (default, the
authors' eval.py: T consecutive frames of every k-th from a random start, here seeded per clip by
``--seed``) or ``spread`` (T frames spread over the whole clip). Under torchrun, ``--padding``
chooses how the clips are shared out: ``authors`` (default) pads as the authors' DistributedSampler
(the first clips scored twice, counted in UAR and in WAR's numerator, WAR divided by the number of
clips); ``drop`` scores every clip exactly once. One process: no padding either way. Every report
(JSON header, printed line) states the sampling and the padding used.

The scoring functions (`evaluate_dataset`, `predict`, `score_gathered`, ...) live in
`emoclip.train.scoring`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from emoclip.train.augment import EVAL_SAMPLINGS
from emoclip.train.data_config import DataConfig
from emoclip.train.eval_report import (
    fold_tag,
    write_fold,
    write_summary,
)
from emoclip.train.loading import build_dataset, class_set
from emoclip.train.scoring import (
    PADDINGS,
    evaluate_dataset,
)

__all__ = [
    "FOLDED",
    "main",
    "parse_data_args",
    "run",
]

log = logging.getLogger(__name__)
FOLDED = ("mafw", "dfew")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emoclip.train.evaluate",
        description="Zero-shot UAR/WAR of a model on a dataset (per fold), with confusion plots.",
        epilog="Data options: --data.NAME VALUE for any DataConfig field (dataset, root, fold, manifest, "
        "mode, leave_out, label_type, classes, temporal_stride, eval_sampling, face_crop, "
        "synthetic_clips, synthetic_heldout). --data.fold takes a list (1,2,3) or 'all'.",
    )
    p.add_argument("--model", required=True, help="registry name or .safetensors path")
    p.add_argument(
        "--classes",
        default=None,
        help="class-set YAML/JSON or preset to score (default: the dataset's)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--num-frames", type=int, default=None, help="frames per clip (default: the model's)"
    )
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--weights-dir", action="append", default=[], help="extra folder with NAME.safetensors"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the clips' random starts (consecutive sampling), of synthetic test clips "
        "and of random test models",
    )
    p.add_argument(
        "--eval-sampling",
        choices=EVAL_SAMPLINGS,
        default=None,
        help="frames per clip: consecutive (default; the authors' eval.py: T consecutive frames "
        "from a random start, seeded) or spread (T frames over the whole clip)",
    )
    p.add_argument(
        "--padding",
        choices=PADDINGS,
        default="authors",
        help="under torchrun: authors (default; DistributedSampler padding, the first clips "
        "scored twice as the authors') or drop (every clip scored once)",
    )
    return p


def parse_data_args(items: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``--data.NAME VALUE`` / ``--data.NAME=VALUE`` / ``data.NAME=VALUE`` -> (fields, folds).

    Returns:
        ``(values for DataConfig, fold texts)``; folds are kept apart because ``--data.fold``
        may be a list or ``all``.

    Raises:
        ValueError: an unknown option or field, or a missing value.
    """
    from emoclip.train.recipe import coerce

    hints = typing.get_type_hints(DataConfig)
    values: dict[str, Any] = {}
    folds: list[str] = []
    items = list(items)
    while items:
        item = items.pop(0)
        key, sep, value = item.removeprefix("--").partition("=")
        if not key.startswith("data."):
            raise ValueError(f"unknown option {item!r}")
        name = key[len("data.") :].replace("-", "_")
        if name not in hints:
            raise ValueError(
                f"unknown data option {key!r}; valid: {', '.join('data.' + n for n in hints)}"
            )
        if not sep:
            if not items:
                raise ValueError(f"{item} needs a value")
            value = items.pop(0)
        if name == "fold":
            folds = [v.strip() for v in value.split(",") if v.strip()]
        else:
            values[name] = coerce(value, hints[name], from_text=True)
    return values, folds


def _folds(dataset: str, folds: list[str]) -> list[int | None]:
    if dataset not in FOLDED:
        return [None]
    if not folds:
        return [1]
    if folds == ["all"]:
        return [1, 2, 3, 4, 5]
    return [int(f) for f in folds]


def run(args: argparse.Namespace, data_values: dict[str, Any], fold_texts: list[str]) -> list[Path]:
    """Evaluate every requested fold; returns the JSON files written."""
    from emoclip.settings import ModelLocations
    from emoclip.train.distributed import resolve_device
    from emoclip.weights.factory import load_model

    torch.manual_seed(args.seed)  # only random-init test models depend on it
    model = load_model(
        args.model,
        device=resolve_device(args.device),
        weights_dirs=args.weights_dir,
        locations=ModelLocations.from_env(),  # a command: the environment, as the CLI reads it
    )
    preprocess = model.config.preprocess
    if args.num_frames:
        preprocess = replace(preprocess, num_frames=args.num_frames)
    if args.eval_sampling:
        data_values = {**data_values, "eval_sampling": args.eval_sampling}
    base = DataConfig(**data_values)
    written, per_fold = [], {}
    for fold in _folds(base.dataset, fold_texts):
        cfg = base if fold is None else replace(base, fold=fold)
        data_names = [c.name for c in class_set(cfg).classes]
        scored = class_set(replace(cfg, classes=args.classes)) if args.classes else class_set(cfg)
        dataset = build_dataset(cfg, args.split, preprocess, train=False, seed=args.seed)
        result = evaluate_dataset(
            model,
            dataset,
            data_names,
            scored,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            precision=args.precision,
            padding=args.padding,
        )
        tag = fold_tag(cfg, fold, args.split)
        padding = result["distributed_padding"]
        header = {
            "model": str(args.model),
            "model_source": model.source,
            "dataset": cfg.dataset,
            "fold": fold,
            "split": args.split,
            "classes": scored.name,
            "num_frames": preprocess.num_frames,
            "eval_sampling": result["eval_sampling"],
            "temporal_stride": cfg.temporal_stride,
            "seed": args.seed,
            "distributed_padding": padding,
            "data": asdict(cfg),
            "skipped_clips": int(getattr(dataset, "skipped", 0)),
        }
        written.append(write_fold(args.out, tag, result, header))
        per_fold[fold] = result
        print(
            f"{tag}: WAR {100 * result['war']:.2f}  UAR {100 * result['uar']:.2f}  "
            f"(n={result['num_samples']}, unmatched={result['unmatched']}, "
            f"sampling={result['eval_sampling']}, padding={padding['mode']} x{padding['world_size']}"
            f" +{padding['padded_duplicates']})"
        )
    if len(per_fold) > 1:
        sampling = next(iter(per_fold.values()))["eval_sampling"]
        written.append(write_summary(args.out, base, args.split, per_fold, sampling, args.padding))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    try:
        data_values, folds = parse_data_args(rest)
        run(args, data_values, folds)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as exc:
        print(f"emoclip.train.evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
