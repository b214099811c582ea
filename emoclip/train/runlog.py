"""A run's logs: ``log.jsonl``, TensorBoard and optional wandb (rank 0 only)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from emoclip.train.errors import TrainSetupError
from emoclip.train.recipe import TrainConfig


class RunLogger:
    """``log.jsonl`` (every step), TensorBoard and optional wandb; a no-op off rank 0."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, enabled: bool) -> None:
        self.enabled = enabled
        self.tb: Any = None
        self.wandb: Any = None
        self.jsonl = None
        if not enabled:
            return
        self.jsonl = open(run_dir / "log.jsonl", "a", encoding="utf-8")
        if cfg.log.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if cfg.log.wandb:
            self.wandb = _init_wandb(cfg, run_dir)

    def record(self, record: dict[str, Any]) -> None:
        """One JSON line."""
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(json_safe(record)) + "\n")
            self.jsonl.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """TensorBoard/wandb scalars."""
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self) -> None:
        """Flush and close everything."""
        for item in (self.jsonl, self.tb):
            if item is not None:
                item.close()
        if self.wandb is not None:
            self.wandb.finish()
        self.jsonl = self.tb = self.wandb = None


def import_wandb() -> Any:
    """The wandb module; TrainSetupError saying how to install it when it is missing."""
    try:
        import wandb
    except ImportError as exc:
        raise TrainSetupError(
            "log.wandb=true needs the wandb package: pip install wandb (or set log.wandb=false)"
        ) from exc
    return wandb


def _init_wandb(cfg: TrainConfig, run_dir: Path) -> Any:
    wandb = import_wandb()
    return wandb.init(
        project=cfg.log.wandb_project,
        name=run_dir.name,
        dir=str(run_dir),
        config=cfg.to_dict(),
        resume="allow",
    )


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats (in nested dicts and lists) replaced by None, for JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
