"""A run's training data: the splits, the warm-up clips, the sampler, the step counts and classes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch.utils.data import Dataset, Subset

from emoclip.classes import ClassSet
from emoclip.model.config import PreprocessConfig
from emoclip.train import distributed as du
from emoclip.train.errors import TrainSetupError
from emoclip.train.loading import build_dataset, class_set
from emoclip.train.phases import warmup_dataset
from emoclip.train.recipe import TrainConfig
from emoclip.train.sampling import EpochSeededDataset, ResumableSampler, split_holdout


@dataclass
class RunData:
    """What `build_run_data` returns.

    Attributes:
        train_set: The training clips, seeded per epoch and item.
        val_set: The validation clips (``eval.split`` or a hold-out), or None.
        warmup_set: The frame-level warm-up's clips (`train_set` unless it draws its own).
        sampler: This rank's resumable shard of `train_set`.
        steps_per_epoch: Optimiser steps per epoch.
        total_steps: ``train.max_steps`` or ``epochs x steps_per_epoch``.
        data_classes: The dataset's classes, in label order.
        eval_classes: The classes evaluated against (``eval.classes`` or `data_classes`).
    """

    train_set: EpochSeededDataset
    val_set: Dataset | None
    warmup_set: EpochSeededDataset
    sampler: ResumableSampler
    steps_per_epoch: int
    total_steps: int
    data_classes: ClassSet
    eval_classes: ClassSet


def build_run_data(cfg: TrainConfig, d: du.DistInfo, pre: PreprocessConfig) -> RunData:
    """Build the datasets and sampler of a run.

    Raises:
        TrainSetupError: Options that do not combine, or too few clips for one step.
    """
    train_set = build_dataset(cfg.data, "train", pre, train=True, seed=cfg.train.seed)
    val_set = None
    if cfg.eval.split:
        val_set = build_dataset(cfg.data, cfg.eval.split, pre, train=False, seed=cfg.train.seed)
    elif cfg.eval.holdout_fraction > 0:  # validation clips carved off the training split
        clean = build_dataset(cfg.data, "train", pre, train=False, seed=cfg.train.seed)
        keep, held = split_holdout(train_set, cfg.eval.holdout_fraction, cfg.train.seed)
        train_set, val_set = Subset(train_set, keep), Subset(clean, held)
    seeded = EpochSeededDataset(train_set, cfg.train.seed)
    warmup_set = seeded  # the same clips unless the warm-up draws its own
    t = cfg.train
    if t.warmup_frame_steps and (t.warmup_frame_pick != "mean" or t.warmup_num_frames):
        if cfg.eval.holdout_fraction > 0:
            raise TrainSetupError(
                "train.warmup_frame_pick=late / train.warmup_num_frames do not combine "
                "with eval.holdout_fraction"
            )
        warmup_set = EpochSeededDataset(warmup_dataset(cfg, pre, cfg.train.seed), cfg.train.seed)
    sampler = ResumableSampler(seeded, num_replicas=d.world_size, rank=d.rank, seed=cfg.train.seed)
    batches = sampler.num_samples // cfg.train.batch_size
    steps_per_epoch = batches // cfg.train.grad_accum
    if steps_per_epoch < 1:
        raise TrainSetupError(
            f"the training split has {len(seeded)} clips: too few for batch_size "
            f"{cfg.train.batch_size} x grad_accum {cfg.train.grad_accum} x {d.world_size} processes"
        )
    total_steps = cfg.train.max_steps or cfg.train.epochs * steps_per_epoch
    data_classes = class_set(cfg.data)
    eval_classes = (
        class_set(dataclasses.replace(cfg.data, classes=cfg.eval.classes))
        if cfg.eval.classes
        else data_classes
    )
    return RunData(
        seeded,
        val_set,
        warmup_set,
        sampler,
        steps_per_epoch,
        total_steps,
        data_classes,
        eval_classes,
    )
