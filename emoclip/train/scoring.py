"""Zero-shot scoring of a dataset: predictions, label matching, sharding over ranks, metrics.

Scoring follows the authors (reference.md §4, §10): each class is embedded from its
descriptions (our ClassSet YAML; the authors' one sentence per class is the presets' text), the
prediction is the argmax of ``softmax(exp(logit_scale) * cos(video, class))``, WAR is the
accuracy and UAR the mean recall over the union of true and predicted labels
(`emoclip.train.metrics`).

Under torchrun, ``padding`` chooses how the clips are shared out: ``authors`` (default) pads as
the authors' DistributedSampler (the first clips scored twice, counted in UAR and in WAR's
numerator, WAR divided by the number of clips); ``drop`` scores every clip exactly once. One
process: no padding either way.

Compound classes: a class set with compounds scores their names too (a compound's embedding is the
mean of its parts'). A sample with one label is scored against the class of that name; a sample
with several labels (MAFW ``label_type=compound``, e.g. ``happiness_surprise``) against the
compound whose parts are exactly those classes. Samples whose label has no counterpart in the
class set are left out and counted as ``unmatched``.

Used by the command line (`emoclip.train.evaluate`) and by evaluation during training
(`run_eval`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from emoclip.classes import ClassSet
from emoclip.model.network import EmoCLIP
from emoclip.train import distributed as du
from emoclip.train.loading import collate
from emoclip.train.metrics import evaluate_predictions
from emoclip.zeroshot import TextEmbeddingCache, class_embeddings, probabilities

PADDINGS = ("authors", "drop")


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
