"""Optimisers (the warm-up's and the video phase's) and learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from emoclip.model.network import EmoCLIP
from emoclip.train.recipe import TrainConfig


def build_optimizer(
    cfg: TrainConfig, main: list[nn.Parameter], tuned: list[nn.Parameter]
) -> torch.optim.Optimizer:
    """SGD (the authors'), Adam or AdamW over one group, plus a second at lr x backbone_lr_scale."""
    o = cfg.optim
    return make_optimizer(cfg, [(main, o.lr), (tuned, o.lr * o.backbone_lr_scale)], o.weight_decay)


def build_video_optimizer(cfg: TrainConfig, model: EmoCLIP) -> torch.optim.Optimizer:
    """The video phase's optimiser (after ``train.freeze_visual_after_warmup``): the temporal model
    at ``optim.lr``; the text tower and logit_scale at lr x ``optim.video_text_lr_scale``."""
    o = cfg.optim
    temporal = [
        p
        for p in (model.temporal.parameters() if model.temporal is not None else [])
        if p.requires_grad
    ]
    text = [
        p
        for n, p in model.backbone.named_parameters()
        if p.requires_grad and not n.startswith("visual.")
    ] + [model.logit_scale]
    decay = o.weight_decay if o.video_weight_decay is None else o.video_weight_decay
    return make_optimizer(cfg, [(temporal, o.lr), (text, o.lr * o.video_text_lr_scale)], decay)


def make_optimizer(
    cfg: TrainConfig, params_lr: Sequence[tuple[list[nn.Parameter], float]], weight_decay: float
) -> torch.optim.Optimizer:
    """``optim.name`` over ``(parameters, lr)`` groups (1-D ones without decay with ``no_decay_1d``)."""
    o = cfg.optim
    groups = []
    for params, lr in params_lr:
        if not params:
            continue
        if o.no_decay_1d:
            decay = [p for p in params if p.ndim >= 2]
            rest = [p for p in params if p.ndim < 2]
            groups += [{"params": decay, "lr": lr}, {"params": rest, "lr": lr, "weight_decay": 0.0}]
        else:
            groups.append({"params": params, "lr": lr})
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=weight_decay)
    kind = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return kind(
        groups, lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps, weight_decay=weight_decay
    )


def _lr_factor(step: int, warmup: int, total: int, floor: float, cosine: bool) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if not cosine:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int | None = None,
) -> torch.optim.lr_scheduler.LRScheduler:
    """MultiStepLR over epochs (the authors'), or cosine / constant with warm-up over steps.

    `total_steps` and `warmup_steps` (default ``optim.warmup_steps``) count from the scheduler's start.
    """
    o = cfg.optim
    if o.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(o.milestones), gamma=o.gamma
        )
    warmup = o.warmup_steps if warmup_steps is None else warmup_steps
    factor = partial(
        _lr_factor,
        warmup=warmup,
        total=total_steps,
        floor=o.min_lr_ratio,
        cosine=o.schedule == "cosine",
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
