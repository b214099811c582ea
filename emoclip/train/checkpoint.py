"""Training state (``state.pt``: resume) and weights export (``NAME.safetensors`` + ``NAME.json``).

The two are kept apart on purpose:

* ``state.pt`` is for resuming. It holds the trained tensors, the optimiser, scheduler and
  GradScaler states, the epoch/step counters and every rank's RNG states. It is written with
  `torch.save` and read with ``torch.load(weights_only=True)``, so only plain containers,
  numbers, strings and tensors are stored (numpy and Python RNG states are converted).
* The export is what `emoclip.load_model` and the app read: our safetensors format, written by
  `emoclip.weights.files.save_checkpoint`, with the training record in the config's ``provenance``.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from emoclip.classes import ClassSet
from emoclip.model.config import EmoCLIPConfig
from emoclip.weights.files import file_sha256, save_checkpoint, sidecar_path

STATE_FILE = "state.pt"
STATE_FORMAT = "emoclip-train-state"
STATE_VERSION = 1


# ---- RNG states --------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's Python, numpy, torch (and CUDA) RNG states, as weights_only-safe values."""
    version, internal, gauss = random.getstate()
    # the legacy (tuple) form; the stubs type it as a tuple-or-dict union
    numpy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    key, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "key": key,
            "state": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        (n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---- training state ----------------------------------------------------------------------------


def trained_state(model: nn.Module, frozen: Iterable[str]) -> dict[str, torch.Tensor]:
    """The model's state without the frozen parameters (trained tensors and buffers)."""
    skip = set(frozen)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in skip}


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a training state atomically (a temporary file, then a rename).

    Args:
        path: Destination, usually ``<run>/state.pt``.
        state: Built by the engine: ``model``, ``optimizer``, ``scheduler``, ``scaler``,
            ``epoch``, ``batch_in_epoch``, ``step``, ``best``, ``rng`` (one per rank), ``config``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training state with ``weights_only=True`` (no code runs).

    Raises:
        ValueError: the file is not an emoclip training state.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not an emoclip training state ({STATE_FILE})")
    return state


def find_resume(resume: str | None, run_dir: Path) -> Path | None:
    """The state file to resume from.

    Args:
        resume: ``None`` (start fresh), ``"auto"`` (``<run_dir>/state.pt`` if it exists, else
            fresh) or a path to a state file or to a run folder holding one.
        run_dir: This run's folder.

    Raises:
        FileNotFoundError: an explicit path holds no state.
    """
    if resume is None:
        return None
    if resume == "auto":
        path = run_dir / STATE_FILE
        return path if path.is_file() else None
    path = Path(resume)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume {resume}: no training state at {path}")
    return path


# ---- weights export ----------------------------------------------------------------------------

_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export_weights(
    model: nn.Module,
    config: EmoCLIPConfig,
    path: str | Path,
    *,
    trained_only: bool,
    dtype: str = "float32",
) -> Path:
    """Write ``path`` (.safetensors) + its JSON sidecar, loadable by `emoclip.load_model`.

    Args:
        model: The `EmoCLIP` (not a DDP wrapper).
        config: Its config as it should be saved (name, preprocess, provenance...).
        path: ``<out>/<name>.safetensors``.
        trained_only: Leave out every ``backbone.*`` tensor: the backbone is frozen with
            pretrained open_clip weights, which `load_model` fills in from open_clip's cache.
        dtype: ``float32``, ``float16`` or ``bfloat16`` for floating tensors.

    Returns:
        The weights path.
    """
    state = model.state_dict()
    if trained_only:
        if not config.model.backbone_pretrained:
            raise ValueError(
                "a trained-only export needs config.model.backbone_pretrained to fill the backbone"
            )
        state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
    return save_checkpoint(state, config, path, dtype=_DTYPES[dtype])


def export_config(
    base: EmoCLIPConfig,
    *,
    name: str,
    pretrained: bool,
    classes: ClassSet | None,
    training: dict[str, Any],
    metrics: dict[str, Any],
) -> EmoCLIPConfig:
    """The config saved beside exported weights.

    Args:
        base: The trained model's config.
        name: The export's name (also its file name).
        pretrained: Whether the backbone started from the open_clip weights ``base`` names; if not
            (random initialisation) ``backbone_pretrained`` is cleared so nothing is filled in.
        classes: A class set to store inline (e.g. synthetic or custom classes), or None.
        training: The training record (``provenance["training"]``).
        metrics: ``{split: metrics}`` (``provenance["metrics"]``).
    """
    model = base.model if pretrained else dataclasses.replace(base.model, backbone_pretrained=None)
    provenance = {**base.provenance, "training": training, "metrics": metrics}
    return base.replace(
        name=name,
        model=model,
        provenance=provenance,
        classes=classes.to_dict() if classes is not None else base.classes,
    )


def add_metrics(weights: str | Path, metrics: dict[str, Any]) -> Path:
    """Merge ``{split: metrics}`` into an export's sidecar provenance (the weights are unchanged)."""
    side = sidecar_path(weights)
    config = EmoCLIPConfig.load(side)
    provenance = {
        **config.provenance,
        "metrics": {**config.provenance.get("metrics", {}), **metrics},
    }
    return config.replace(provenance=provenance).save(
        side, sha256=file_sha256(weights), file=Path(weights).name
    )
