"""Resumable training state, as a mixin of `engine.Trainer`: ``state.pt`` (trained tensors,
optimiser, scheduler, GradScaler, counters, every rank's RNG states), restoring it, and
`preserved_rng` (run a block without moving any RNG stream)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from . import distributed as du

__all__ = ["StateMixin", "preserved_rng"]

log = logging.getLogger("emoclip.train")


class StateMixin:
    """Saving and restoring the state of `engine.Trainer`."""

    def save_state(self) -> Path:
        """Write ``<run>/state.pt`` (rank 0 writes every rank's RNG states)."""
        rngs = du.all_gather_objects(ckpt.rng_state())
        path = self.run_dir / ckpt.STATE_FILE
        if self.dist.is_main:
            ckpt.save_state(path, {
                "model": ckpt.trained_state(self.model, self.frozen),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "step": self.step, "best": self.best, "last_eval_step": self._last_eval_step,
                "rng": rngs, "world_size": self.dist.world_size, "config": self.cfg.to_dict(),
            })
        du.barrier()
        return path

    def restore(self, path: Path) -> None:
        """Continue from a saved state: tensors, optimiser, scheduler, scaler, counters, RNG."""
        state = ckpt.load_state(path)
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        if unexpected or set(missing) - set(self.frozen):
            raise ValueError(f"{path} does not fit this model: unexpected {unexpected[:5]}, "
                             f"missing {sorted(set(missing) - set(self.frozen))[:5]}")
        if self.switches_phase and state["step"] >= self.cfg.train.warmup_frame_steps:
            self.step = state["step"]
            self.enter_video_phase(recalibrate=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.best, self._last_eval_step = state["best"], state["last_eval_step"]
        _warn_config_changes(state["config"], self.cfg.to_dict())
        if state["world_size"] == self.dist.world_size:
            ckpt.set_rng_state(state["rng"][self.dist.rank])
        else:
            log.warning("%s was saved by %d processes, this run has %d: RNG streams are reseeded",
                        path, state["world_size"], self.dist.world_size)
            ckpt.seed_everything(self.cfg.train.seed + 1000 * self.dist.rank + self.step)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch, self.batch_in_epoch)


_RESUME_MAY_CHANGE = {"train.max_steps", "train.stop_at_step", "train.epochs", "train.num_workers", "out.dir",
                      "out.push_to_hub", "log.every", "log.tensorboard", "log.wandb", "train.save_every_steps"}


def _warn_config_changes(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Log the settings that differ from the ones the state was saved with."""
    changed = [f"{section}.{k}: {v!r} -> {current[section].get(k)!r}"
               for section, values in saved.items() if isinstance(values, dict)
               for k, v in values.items()
               if f"{section}.{k}" not in _RESUME_MAY_CHANGE and current.get(section, {}).get(k) != v]
    if changed:
        log.warning("resuming with a changed config (the run will differ from an uninterrupted one): %s",
                    "; ".join(changed))


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, BatchNorm recalibration) without moving any RNG stream."""
    state = ckpt.rng_state()
    try:
        yield
    finally:
        ckpt.set_rng_state(state)
