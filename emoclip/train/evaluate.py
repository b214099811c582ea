"""Zero-shot evaluation: UAR and WAR with the authors' definitions, per dataset and fold.

Command line::

    python -m emoclip.train.evaluate --model NAME|PATH --data.dataset dfew --data.root DIR \\
        [--data.fold 1|1,2,3|all] [--classes YAML|PRESET] [--split test] --out DIR

Any `DataConfig` field can be given as ``--data.NAME VALUE`` (or ``data.NAME=VALUE``). For every
fold it writes ``<out>/<dataset>[-fold<k>]-<split>.json`` (metrics, class names, counts),
``...-confusion.png`` and ``...-predictions.csv``; with several folds also
``<out>/<dataset>-<split>-summary.json`` (mean and standard deviation over folds).

Scoring follows the authors (reference.md §4, §10): each class is embedded from its
descriptions (our ClassSet YAML; the authors' one sentence per class is the presets' text), the
prediction is the argmax of ``softmax(exp(logit_scale) * cos(video, class))``, WAR is the
accuracy and UAR the mean recall over the union of true and predicted labels
(`emoclip.train.metrics`).

Frame sampling (``--eval-sampling``, i.e. ``data.eval_sampling``): ``consecutive`` (default, the
authors' eval.py: T consecutive frames of every k-th from a random start, here seeded per clip by
``--seed``) or ``spread`` (T frames spread over the whole clip). Under torchrun, ``--padding``
chooses how the clips are shared out: ``authors`` (default) pads as the authors' DistributedSampler
(the first clips scored twice, counted in UAR and in WAR's numerator, WAR divided by the number of
clips); ``drop`` scores every clip exactly once. One process: no padding either way. Every report
(JSON header, printed line) states the sampling and the padding used.

Compound classes: a class set with compounds scores their names too (a compound's embedding is the
mean of its parts'). A sample with one label is scored against the class of that name; a sample
with several labels (MAFW ``label_type=compound``, e.g. ``happiness_surprise``) against the
compound whose parts are exactly those classes. Samples whose label has no counterpart in the
class set are left out and counted as ``unmatched``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import math
import statistics
import sys
import typing
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..classes import ClassSet
from ..model import EmoCLIP
from ..zeroshot import TextEmbeddingCache, class_embeddings, probabilities
from . import distributed as du
from .loading import EVAL_SAMPLINGS, DataConfig, build_dataset, class_set, collate
from .metrics import evaluate_predictions, plot_confusion

log = logging.getLogger(__name__)
FOLDED = ("mafw", "dfew")
PADDINGS = ("authors", "drop")
SUMMARY_KEYS = ("war", "uar", "uar_true_classes")


def target_indices(
    label_sets: Sequence[Sequence[int]], data_names: Sequence[str], scored: ClassSet
) -> list[int]:
    """Map dataset labels to indices of the scored class set (classes, then compounds).

    Args:
        label_sets: Per sample, its label indices into `data_names` (one, or several for a
            compound); empty when unknown.
        data_names: The dataset class set's class names, in label order.
        scored: The class set the model scores.

    Returns:
        Per sample, an index into ``scored.names``, or -1 when nothing matches.
    """
    singles = {c.name.casefold(): i for i, c in enumerate(scored.classes)}
    offset = len(scored.classes)
    compounds = {
        frozenset(p.casefold() for p in c.parts): offset + i for i, c in enumerate(scored.compounds)
    }
    out = []
    for labels in label_sets:
        names = [data_names[j].casefold() for j in labels if 0 <= j < len(data_names)]
        if len(names) != len(labels) or not names:
            out.append(-1)
        elif len(set(names)) == 1:
            out.append(singles.get(names[0], -1))
        else:
            out.append(compounds.get(frozenset(names), -1))
    return out


@torch.inference_mode()
def predict(
    model: EmoCLIP,
    dataset: Dataset,
    scored: ClassSet,
    *,
    batch_size: int = 16,
    num_workers: int = 0,
    precision: str = "fp32",
) -> tuple[list[str], list[list[int]], list[int]]:
    """Zero-shot predictions for every item of `dataset`.

    Returns:
        ``(ids, label_sets, predictions)``; predictions index ``scored.names``.
    """
    was_training = model.training
    model.eval()
    device = model.logit_scale.device
    classes = class_embeddings(scored, TextEmbeddingCache(model)).to(device)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=functools.partial(collate, context_length=model.context_length),
    )
    ids: list[str] = []
    label_sets: list[list[int]] = []
    preds: list[int] = []
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    for batch in loader:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            video = model.encode_video(batch["frames"].to(device))
        probs = probabilities(video.float(), classes, model.logit_scale.detach())
        preds += probs.argmax(-1).tolist()
        ids += batch["ids"]
        label_sets += batch["label_sets"]
    model.train(was_training)
    return ids, label_sets, preds


def shard_indices(n: int, world: int, rank: int, padding: str = "authors") -> list[int]:
    """The dataset indices one rank scores.

    Args:
        n: Clips in the dataset.
        world: Number of processes W.
        rank: This process, ``0 <= rank < W``.
        padding: "authors": as torch's ``DistributedSampler(shuffle=False, drop_last=False)``,
            which the authors' test loader used: ``range(n)`` is padded to ``ceil(n/W)*W`` by
            repeating its start, and rank r takes every W-th index from r. "drop": every W-th clip
            from r, each clip exactly once over all ranks.

    Returns:
        Indices into the dataset, in the order the rank scores them.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    indices = list(range(n))
    if padding == "authors" and world > 1 and n:
        total = math.ceil(n / world) * world
        while len(indices) < total:
            indices += indices[: total - len(indices)]
    return indices[rank::world]


def frame_sampling(dataset: Dataset) -> str | None:
    """How `dataset` (or the dataset a `Subset` wraps) samples a clip's frames, if it says."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "frame_sampling", None)


def evaluate_dataset(
    model: EmoCLIP,
    dataset: Dataset,
    data_names: Sequence[str],
    scored: ClassSet,
    *,
    batch_size: int = 16,
    num_workers: int = 0,
    precision: str = "fp32",
    padding: str = "authors",
) -> dict[str, Any]:
    """Predict, match labels and compute the metrics; sharded over ranks under torchrun.

    Each rank scores its `shard_indices` (``padding``: "authors" repeats the first clips as the
    authors' DistributedSampler, "drop" scores each clip once); the results are gathered so every
    rank returns the same numbers. With "authors" the duplicates count in UAR and in WAR's
    numerator, and WAR is divided by the number of labelled clips (the authors' ``len(dataset)``).

    Returns:
        `evaluate_predictions`'s dict plus ``class_names``, ``unmatched``, ``eval_sampling``
        (`frame_sampling`), ``distributed_padding`` (``{"mode", "world_size",
        "padded_duplicates"}``) and ``rows`` (``[id, true index, predicted index]`` per clip,
        each clip once).
    """
    rank, world = (torch.distributed.get_rank(), du.world_size()) if du.world_size() > 1 else (0, 1)
    mine = shard_indices(len(dataset), world, rank, padding)  # type: ignore[arg-type]
    shard = Subset(dataset, mine) if world > 1 else dataset
    ids, label_sets, preds = predict(
        model, shard, scored, batch_size=batch_size, num_workers=num_workers, precision=precision
    )
    parts = du.all_gather_objects((mine, ids, label_sets, preds))
    result = score_gathered(parts, data_names, scored)
    result.update(
        eval_sampling=frame_sampling(dataset),
        distributed_padding={
            "mode": padding,
            "world_size": world,
            "padded_duplicates": result.pop("padded_duplicates"),
        },
    )
    return result


def score_gathered(
    parts: Sequence[tuple[Sequence[int], Sequence[str], Sequence[Sequence[int]], Sequence[int]]],
    data_names: Sequence[str],
    scored: ClassSet,
) -> dict[str, Any]:
    """The metrics of every rank's ``(dataset indices, ids, label sets, predictions)``.

    A dataset index seen before (DistributedSampler padding) is a duplicate: it is scored as the
    authors do (in UAR and WAR's numerator) but not in WAR's denominator, ``unmatched`` or ``rows``.

    Returns:
        `evaluate_predictions`'s dict plus ``class_names``, ``unmatched``, ``rows`` and
        ``padded_duplicates``.
    """
    seen: set[int] = set()
    duplicate, ids, label_sets, preds = [], [], [], []
    for indices, part_ids, part_labels, part_preds in parts:
        for index, clip, labels, pred in zip(indices, part_ids, part_labels, part_preds):
            duplicate.append(index in seen)
            seen.add(index)
            ids.append(clip)
            label_sets.append(labels)
            preds.append(pred)
    targets = target_indices(label_sets, data_names, scored)
    once = [not d for d in duplicate]
    labelled = sum(1 for t, o in zip(targets, once) if o and t >= 0)
    unmatched = sum(1 for t, s, o in zip(targets, label_sets, once) if o and t < 0 and s)
    result = evaluate_predictions(
        targets, preds, scored.names, war_denominator=labelled if any(duplicate) else None
    )
    result.update(
        class_names=list(scored.names),
        unmatched=unmatched,
        padded_duplicates=sum(duplicate),
        rows=[[i, t, p] for i, t, p, o in zip(ids, targets, preds, once) if o],
    )
    return result


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of `evaluate_dataset`'s result (for logs and provenance)."""
    keys = (
        "war",
        "uar",
        "uar_true_classes",
        "num_samples",
        "unmatched",
        "per_class_recall",
        "eval_sampling",
        "distributed_padding",
    )
    return {k: metrics[k] for k in keys if k in metrics}


# ---- command line ------------------------------------------------------------------------------


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
    from .recipe import coerce

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


def _tag(cfg: DataConfig, fold: int | None, split: str) -> str:
    return f"{cfg.dataset}{'' if fold is None else f'-fold{fold}'}-{split}"


def _write_fold(out: Path, tag: str, result: dict[str, Any], header: dict[str, Any]) -> Path:
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


def _summarise(
    out: Path,
    cfg: DataConfig,
    split: str,
    per_fold: dict[int | None, dict[str, Any]],
    sampling: str | None,
    padding: str,
) -> Path:
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


def run(args: argparse.Namespace, data_values: dict[str, Any], fold_texts: list[str]) -> list[Path]:
    """Evaluate every requested fold; returns the JSON files written."""
    from ..factory import load_model
    from .distributed import resolve_device

    torch.manual_seed(args.seed)  # only random-init test models depend on it
    model = load_model(
        args.model, device=resolve_device(args.device), weights_dirs=args.weights_dir
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
        tag = _tag(cfg, fold, args.split)
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
        written.append(_write_fold(args.out, tag, result, header))
        per_fold[fold] = result
        print(
            f"{tag}: WAR {100 * result['war']:.2f}  UAR {100 * result['uar']:.2f}  "
            f"(n={result['num_samples']}, unmatched={result['unmatched']}, "
            f"sampling={result['eval_sampling']}, padding={padding['mode']} x{padding['world_size']}"
            f" +{padding['padded_duplicates']})"
        )
    if len(per_fold) > 1:
        sampling = next(iter(per_fold.values()))["eval_sampling"]
        written.append(_summarise(args.out, base, args.split, per_fold, sampling, args.padding))
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
