"""Saving and resuming a run's training state (``<run>/state.pt``) and its RNG streams.

Resuming restores the trained tensors, optimiser, scheduler, GradScaler, epoch/step counters and
every rank's RNG states. Training items are seeded by ``(train.seed, epoch, index)``
(`EpochSeededDataset`), so an interrupted run continues with exactly the batches, augmentations
and losses of an uninterrupted one, whatever ``num_workers`` is. `engine.Trainer` owns the state
and calls these functions from its ``save_state`` / ``restore``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emoclip.model.network import EmoCLIP
from emoclip.train import checkpoint as ckpt, distributed as du
from emoclip.train.recipe import TrainConfig

log = logging.getLogger("emoclip.train")


def save_state(
    run_dir: Path, dist: du.DistInfo, payload: Callable[[list[dict[str, Any]]], dict[str, Any]]
) -> Path:
    """Write ``<run>/state.pt`` (rank 0 writes every rank's RNG states).

    Args:
        run_dir: The run folder.
        dist: This process's place in the job.
        payload: Builds the state from every rank's RNG states (called on rank 0 only).
    """
    rngs = du.all_gather_objects(ckpt.rng_state())
    path = run_dir / ckpt.STATE_FILE
    if dist.is_main:
        ckpt.save_state(path, payload(rngs))
    du.barrier()
    return path


def load_trained(path: Path, model: EmoCLIP, frozen: list[str]) -> dict[str, Any]:
    """Load `path`'s trained tensors into `model`; returns the whole saved state.

    Raises:
        ValueError: The state does not fit the model (tensors other than the `frozen` ones differ).
    """
    state = ckpt.load_state(path)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if unexpected or set(missing) - set(frozen):
        raise ValueError(
            f"{path} does not fit this model: unexpected {unexpected[:5]}, "
            f"missing {sorted(set(missing) - set(frozen))[:5]}"
        )
    return state


def restore_streams(
    path: Path, state: dict[str, Any], cfg: TrainConfig, dist: du.DistInfo, step: int
) -> None:
    """Warn about changed settings, then restore this rank's RNG streams (reseed them when the
    number of processes changed)."""
    warn_config_changes(state["config"], cfg.to_dict())
    if state["world_size"] == dist.world_size:
        ckpt.set_rng_state(state["rng"][dist.rank])
    else:
        log.warning(
            "%s was saved by %d processes, this run has %d: RNG streams are reseeded",
            path,
            state["world_size"],
            dist.world_size,
        )
        ckpt.seed_everything(cfg.train.seed + 1000 * dist.rank + step)


_RESUME_MAY_CHANGE = {
    "train.max_steps",
    "train.stop_at_step",
    "train.epochs",
    "train.num_workers",
    "out.dir",
    "out.push_to_hub",
    "log.every",
    "log.tensorboard",
    "log.wandb",
    "train.save_every_steps",
}


def warn_config_changes(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Log the settings that differ from the ones the state was saved with."""
    changed = [
        f"{section}.{k}: {v!r} -> {current[section].get(k)!r}"
        for section, values in saved.items()
        if isinstance(values, dict)
        for k, v in values.items()
        if f"{section}.{k}" not in _RESUME_MAY_CHANGE and current.get(section, {}).get(k) != v
    ]
    if changed:
        log.warning(
            "resuming with a changed config (the run will differ from an uninterrupted one): %s",
            "; ".join(changed),
        )


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, BatchNorm recalibration) without moving any RNG stream."""
    state = ckpt.rng_state()
    try:
        yield
    finally:
        ckpt.set_rng_state(state)
