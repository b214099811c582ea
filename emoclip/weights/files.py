"""Checkpoint files: ``NAME.safetensors`` + ``NAME.json`` (config, provenance, sha256); and
fetching pretrained CLIP backbone weights (`pretrained_backbone_state`).

Nothing here executes code from a file: safetensors for our format, and
``torch.load(weights_only=True)`` for the authors' pickled checkpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from emoclip.model.config import EmoCLIPConfig, ModelConfig


class CheckpointError(ValueError):
    """A weights file is unreadable, unsafe, corrupt or does not fit its config."""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(weights_path: str | Path) -> Path:
    """``X.json`` beside ``X.safetensors``."""
    return Path(weights_path).with_suffix(".json")


def save_checkpoint(
    state_dict: Mapping[str, torch.Tensor],
    config: EmoCLIPConfig,
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar with the file's sha256.

    Args:
        state_dict: Tensors to store (e.g. ``model.state_dict()``, possibly a subset).
        config: The model's config, stored in the sidecar.
        path: Destination ``*.safetensors``.
        dtype: Cast floating tensors to this dtype (e.g. ``torch.float16`` to halve the size).

    Returns:
        The weights path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights must be written as .safetensors, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in state_dict.items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous()
    save_file(tensors, str(path), metadata={"format": "pt", "name": config.name})
    config.save(sidecar_path(path), sha256=file_sha256(path), file=path.name)
    return path


def read_config(weights_path: str | Path) -> EmoCLIPConfig:
    """The config in the JSON sidecar of a ``.safetensors`` file, checked against
    `EmoCLIPConfig.check_bounds` (nothing is allocated for a config out of bounds).

    Raises:
        CheckpointError: no sidecar, an invalid one, or an architecture out of bounds.
    """
    side = sidecar_path(weights_path)
    if not side.is_file():
        raise CheckpointError(
            f"{Path(weights_path).name} has no config sidecar {side.name}: the architecture is "
            "never guessed from tensor shapes"
        )
    try:
        config = EmoCLIPConfig.load(side)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{side} is not a valid EmoCLIP config: {exc}") from exc
    try:
        config.check_bounds()
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{side.name} asks for an architecture out of bounds, refused: {exc}"
        ) from exc
    return config


def load_checkpoint(
    path: str | Path, *, verify: bool = True, require_sha256: bool = False
) -> tuple[EmoCLIPConfig, dict[str, torch.Tensor]]:
    """Read our checkpoint format.

    Args:
        path: ``*.safetensors`` with a ``*.json`` sidecar beside it.
        verify: Check the file's sha256 against the sidecar (when the sidecar records one).
        require_sha256: The sidecar must record a sha256 (files from the Hub); implies `verify`.

    Returns:
        ``(config, state_dict)``.

    Raises:
        CheckpointError: no or invalid sidecar, architecture out of bounds, a missing sha256 when
            required, a sha256 mismatch, or an unreadable file.
    """
    import json

    path = Path(path)
    config = read_config(path)
    if verify or require_sha256:
        expected = json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("sha256")
        if require_sha256 and not (isinstance(expected, str) and len(expected) == 64):
            raise CheckpointError(
                f"{sidecar_path(path).name} records no sha256 of {path.name}: weights from the "
                "Hub are loaded only when their sidecar carries one to verify"
            )
        if expected and file_sha256(path) != expected:
            raise CheckpointError(
                f"{path} does not match the sha256 in {sidecar_path(path).name}: "
                "the file is corrupt or was replaced; download or export it again"
            )
    return config, read_state_dict(path)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a PyTorch pickle, without executing code.

    Pickles are read with ``torch.load(weights_only=True)``; a pickle that carries code (or any
    object that is not a tensor container) is refused. ``{"state_dict": ...}`` and
    ``{"model": ...}`` wrappers are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path.name} is not a readable safetensors file: {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(
            f"refused to load {path.name}: not a plain tensor checkpoint ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Only weights are read; "
            "pickles that carry code or custom objects are never executed."
        ) from exc
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path.name} does not hold a state dict of tensors")
    return dict(obj)


# ------------------------------------------------------------------------------------------------
# Pretrained CLIP backbone weights, fetched through open_clip's registry (Hub or local cache).


def pretrained_backbone_state(
    config: ModelConfig, *, cache_dir: str | Path | None = None, offline: bool = False
) -> dict[str, Any]:
    """State dict of the pretrained CLIP named by ``config.backbone`` + ``backbone_pretrained``.

    Goes through open_clip's pretrained registry, which downloads with huggingface_hub into its
    cache. With ``offline=True`` only the local cache is used.

    Raises:
        RuntimeError: the weights are neither cached nor downloadable.
    """
    from open_clip import pretrained as oc_pretrained
    from open_clip.factory import load_state_dict  # not re-exported by open_clip 3.x

    tag = config.backbone_pretrained
    if not tag:
        raise RuntimeError(f"model config names no pretrained weights for {config.backbone}")
    if Path(tag).is_file():
        return read_state_dict(tag)
    pcfg = oc_pretrained.get_pretrained_cfg(config.backbone, tag)
    if not pcfg:
        raise RuntimeError(f"open_clip knows no pretrained tag {tag!r} for {config.backbone}")
    from emoclip.weights import hub

    if offline or not hub.hub_online():
        path = hub.cached_open_clip_file(pcfg, cache_dir=cache_dir)
        if path is None:
            raise RuntimeError(
                f"pretrained CLIP weights {config.backbone}/{tag} are not in the local cache "
                f"and the Hugging Face Hub is not reachable ({hub.offline_reason()})"
            )
        return load_state_dict(str(path))
    path = oc_pretrained.download_pretrained(pcfg, cache_dir=str(cache_dir) if cache_dir else None)
    if not path:
        raise RuntimeError(f"could not download pretrained CLIP weights {config.backbone}/{tag}")
    return load_state_dict(path)


def pretrained_location(config: ModelConfig) -> str | None:
    """Where `pretrained_backbone_state` would fetch from (``hf-hub:repo/file``), or None."""
    from open_clip import pretrained as oc_pretrained

    if not config.backbone_pretrained:
        return None
    if Path(config.backbone_pretrained).is_file():
        return config.backbone_pretrained
    pcfg = oc_pretrained.get_pretrained_cfg(config.backbone, config.backbone_pretrained)
    if not pcfg:
        return None
    if pcfg.get("hf_hub"):
        return "hf-hub:" + pcfg["hf_hub"].rstrip("/")
    return pcfg.get("url") or None
