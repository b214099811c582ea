"""The exported weights of a run: their name, config, provenance record and files.

Plain functions of the pieces they need; `selection.ModelSelection` calls them when it exports.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from emoclip.classes import ClassSet
from emoclip.model.config import EmoCLIPConfig
from emoclip.model.network import EmoCLIP
from emoclip.train import checkpoint as ckpt, distributed as du
from emoclip.train.recipe import TrainConfig
from emoclip.train.runlog import json_safe

log = logging.getLogger("emoclip.train")


def export_name(cfg: TrainConfig, model: EmoCLIP) -> str:
    """File stem and config name of the exported weights."""
    return cfg.out.name or model.config.name


def export_config(
    cfg: TrainConfig,
    model: EmoCLIP,
    metrics: dict[str, Any],
    *,
    pretrained: bool,
    eval_classes: ClassSet,
    training: dict[str, Any],
) -> EmoCLIPConfig:
    """The exported model's config: name, class set and the training record (`training_record`)."""
    inline = cfg.data.classes or cfg.eval.classes or cfg.data.dataset in ("synthetic", "manifest")
    return ckpt.export_config(
        model.config,
        name=export_name(cfg, model),
        pretrained=pretrained,
        classes=eval_classes if inline else None,
        training=training,
        metrics=json_safe(metrics),
    )


def training_record(
    cfg: TrainConfig,
    model: EmoCLIP,
    *,
    pretrained: bool,
    tuned_params: list[nn.Parameter],
    best: dict[str, Any] | None,
    data_classes: ClassSet,
    step: int,
    epoch: int,
    world_size: int,
) -> dict[str, Any]:
    """How the weights were made, for the export's provenance."""
    from emoclip.version import __version__

    d = cfg.data
    backbone = backbone_note(cfg, model, pretrained=pretrained, tuned_params=tuned_params)
    selection = "final weights (no validation split)"
    if best is not None:
        selection = (
            f"best {cfg.eval.metric.upper()} on split {cfg.eval.split!r} at epoch "
            f"{best['epoch']} (step {best['step']})"
        )
    return {
        "data": {
            "dataset": d.dataset,
            "mode": d.mode,
            "fold": d.fold,
            "label_type": d.label_type,
            "leave_out": d.leave_out,
            "classes": data_classes.name,
        },
        "steps": step,
        "epochs": epoch,
        "optimizer": cfg.optim.name,
        "lr": cfg.optim.lr,
        "schedule": cfg.optim.schedule,
        "precision": cfg.train.precision,
        "world_size": world_size,
        "global_batch": cfg.train.batch_size * cfg.train.grad_accum * world_size,
        "seed": cfg.train.seed,
        "backbone": backbone,
        "selection": selection,
        "emoclip_version": __version__,
        "config": cfg.to_dict(),
    }


def backbone_note(
    cfg: TrainConfig, model: EmoCLIP, *, pretrained: bool, tuned_params: list[nn.Parameter]
) -> str:
    """One line on the backbone: its initialisation and whether it was fine-tuned or trained."""
    origin = (
        f"open_clip pretrained {model.config.model.backbone_pretrained!r}"
        if pretrained
        else "random initialisation"
    )
    if tuned_params:
        towers = "+".join(
            n
            for n, on in (
                ("visual", cfg.model.finetune_visual),
                ("text transformer", cfg.model.finetune_text),
            )
            if on
        )
        return f"{origin}, {towers} fine-tuned at lr x {cfg.optim.backbone_lr_scale:g}"
    trained = any(p.requires_grad for p in model.backbone.parameters())
    return f"{origin}, {'trained' if trained else 'frozen'}"


def export(
    cfg: TrainConfig,
    model: EmoCLIP,
    config: EmoCLIPConfig,
    run_dir: Path,
    *,
    pretrained: bool,
    is_main: bool,
) -> Path:
    """Write ``<run>/<name>.safetensors`` + ``.json`` (rank 0), then wait for every rank."""
    path = run_dir / f"{export_name(cfg, model)}.safetensors"
    if is_main:
        trained_only = pretrained and not any(p.requires_grad for p in model.backbone.parameters())
        ckpt.export_weights(
            model, config, path, trained_only=trained_only, dtype=cfg.out.export_dtype
        )
        log.info("exported %s", path)
    du.barrier()
    return path
