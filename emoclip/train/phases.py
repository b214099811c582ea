"""The frame-level warm-up and its switch to a video phase; BatchNorm re-estimation.

Frame-level warm-up (``train.warmup_frame_steps``): the first steps bypass the temporal model and
pair each caption with a frame embedding, the normalised mean over the clip's frames (pick
"mean") or one random frame from the clip's second half, where the expression has formed (pick
"late"), optionally from clips of ``train.warmup_num_frames`` frames. With
``train.freeze_visual_after_warmup`` the warm-up ends in a switch to a video phase: BatchNorm
statistics are re-estimated on ``train.bn_recalibrate_batches`` warm-up batches, the image tower is
frozen (eval mode, kept as trained: it stays in the training state and the export), and a new
optimiser and schedule train the temporal model (at ``optim.lr``), the text tower and logit_scale
(at lr x ``optim.video_text_lr_scale``); the warm-up's own schedule then ends at the switch.

`engine.Trainer` holds the phase state and calls these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from emoclip.model.config import PreprocessConfig
from emoclip.model.network import EmoCLIP
from emoclip.train.loading import build_dataset
from emoclip.train.optim import build_scheduler, build_video_optimizer
from emoclip.train.recipe import TrainConfig
from emoclip.train.sampling import LateFrameDataset


def warmup_dataset(
    cfg: TrainConfig, pre: PreprocessConfig, seed: int, train: bool = True
) -> Dataset:
    """Training clips for the frame-level warm-up (``warmup_num_frames``, the "late" pick)."""
    t = cfg.train
    if t.warmup_num_frames:
        pre = dataclasses.replace(pre, num_frames=t.warmup_num_frames)
    data = build_dataset(cfg.data, "train", pre, train=train, seed=seed)
    return LateFrameDataset(data) if t.warmup_frame_pick == "late" else data


def video_phase_optim(
    cfg: TrainConfig, model: EmoCLIP, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The video phase's optimiser and its schedule over the steps after the warm-up."""
    optimizer = build_video_optimizer(cfg, model)
    scheduler = build_scheduler(
        cfg,
        optimizer,
        total_steps - cfg.train.warmup_frame_steps,
        warmup_steps=cfg.optim.video_warmup_steps,
    )
    return optimizer, scheduler


def recalibrate_batchnorm(
    model: EmoCLIP,
    cfg: TrainConfig,
    loader: Callable[[Dataset], DataLoader],
    autocast: Callable[[], contextlib.AbstractContextManager],
    device: torch.device,
    data: Dataset | None = None,
) -> None:
    """Recompute BatchNorm running statistics of a training image tower on
    ``train.bn_recalibrate_batches`` batches of `data` (default: clean training clips).

    A frozen image tower keeps its statistics (they are part of what the rest learnt on).

    Args:
        model: The model training; its image tower takes ``(B*T, 3, H, W)`` frames.
        cfg: The run's config.
        loader: Makes a training-batch-size loader over a dataset (batches of ``(B, T, 3, H, W)``
            ``frames``).
        autocast: The run's autocast context.
        device: Where the model is.
        data: The clips to estimate on.
    """
    n = cfg.train.bn_recalibrate_batches
    visual = model.backbone.visual
    norms = [m for m in visual.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not n or not norms or not any(p.requires_grad for p in visual.parameters()):
        return
    if data is None:
        data = build_dataset(
            cfg.data,
            "train",
            model.config.preprocess,
            train=False,
            seed=cfg.train.seed + 1,
        )
    batches = loader(data)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        for batch in itertools.islice(batches, n):
            with autocast():
                model.encode_image(batch["frames"].flatten(0, 1).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
