"""What a training run returns (`TrainResult`) and where it writes (`resolve_run_dir`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoclip.model.network import EmoCLIP
from emoclip.train.recipe import TrainConfig


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        run_dir: The run folder (config.yaml, state.pt, log.jsonl, tensorboard/, the export).
        weights: The exported ``.safetensors`` (None when interrupted).
        model: The trained model (on its device; the selected one is the exported file).
        step: Optimiser steps done in total.
        epoch: Completed epochs.
        losses: ``(step, loss)`` of every step of this invocation (mean over ranks).
        best: Validation record of the exported weights, if a validation split was used.
        interrupted: Stopped by ``train.stop_at_step``.
    """

    run_dir: Path
    weights: Path | None
    model: EmoCLIP
    step: int
    epoch: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    interrupted: bool = False


def resolve_run_dir(cfg: TrainConfig, config_path: str | Path | None = None) -> Path:
    """``out.dir``, else ``runs/<config file stem>``, else ``runs/<model name>``."""
    if cfg.out.dir:
        return Path(cfg.out.dir)
    stem = Path(config_path).stem if config_path else Path(cfg.model.name).stem
    return Path("runs") / stem
