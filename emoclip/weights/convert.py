"""Convert the authors' EmoCLIP checkpoints (NickyFot/EmoCLIP) to our safetensors format.

The job here is the conversion around the key mapping (`emoclip.weights.convert_keys`):
read the authors' file, check its temporal depth against the target config, complete a
DownstreamTask checkpoint's missing CLIP text tower and ``logit_scale`` from a given CLIP state
dict (``text_tower``) or from open_clip's pretrained weights of the config's backbone (cache
first, then a download), verify every key and shape, and write the result.

Files are read with `emoclip.weights.files.read_state_dict` (safetensors, or ``torch.load`` with
``weights_only=True``): nothing in a checkpoint is ever executed. The result is
``DST.safetensors`` + ``DST.json`` (the registry config plus provenance), loadable with
``emoclip.load_model(DST)``.

Command line (emoclip/cli.py)::

    emoclip convert AUTHORS.pth weights/emoclip-vitb32.safetensors [--text-tower CLIP.safetensors]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from emoclip.model.config import EmoCLIPConfig
from emoclip.weights.convert_keys import (
    authors_to_emoclip,
    detect_layout,
    dropped_keys,
    strip_ddp_prefix,
    temporal_layer_count,
    text_tower_needed,
)
from emoclip.weights.files import (
    CheckpointError,
    file_sha256,
    pretrained_backbone_state,
    pretrained_location,
    read_state_dict,
    save_checkpoint,
)

__all__ = [
    "check_temporal_depth",
    "complete_text_tower",
    "convert_checkpoint",
    "expected_shapes",
    "load_text_tower",
    "read_clip_state",
    "resolve_config",
    "verify_state",
]

log = logging.getLogger(__name__)

# Entries of OpenAI's TorchScript state dicts that are not tensors of the model.
_CLIP_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")
_TEXT_TOWER_HELP = (
    "pass a CLIP state dict with the text tower: --text-tower FILE (Python: text_tower=FILE; "
    "e.g. open_clip_model.safetensors of timm/vit_base_patch32_clip_224.openai, or "
    "clip.load('ViT-B/32', jit=False)[0].state_dict() saved with torch.save), or go online once "
    "so open_clip caches the OpenAI CLIP weights in the Hugging Face cache"
)


# ----------------------------------------------------------------------------- config and checks


def resolve_config(config: str | Path | EmoCLIPConfig) -> EmoCLIPConfig:
    """An `EmoCLIPConfig` from itself, a registry name or a JSON config file."""
    if isinstance(config, EmoCLIPConfig):
        return config
    if str(config).endswith(".json") and Path(config).is_file():
        return EmoCLIPConfig.load(config)
    from emoclip.weights.registry import get_spec

    return get_spec(str(config)).config()


def expected_shapes(config: EmoCLIPConfig) -> dict[str, torch.Size]:
    """Key -> shape of ``EmoCLIP(config).state_dict()``, built on the meta device (no memory)."""
    from emoclip.model.network import EmoCLIP

    try:
        with torch.device("meta"):
            model = EmoCLIP(config)
    except (RuntimeError, NotImplementedError):  # an op without meta support: build it for real
        model = EmoCLIP(config)
    return {k: v.shape for k, v in model.state_dict().items()}


def check_temporal_depth(state_dict: Mapping[str, torch.Tensor], config: EmoCLIPConfig) -> None:
    """Raise `CheckpointError` unless the checkpoint's temporal depth is the config's."""
    found = temporal_layer_count(state_dict)
    temporal = config.model.temporal
    if config.model.pooling != "cls" or temporal is None:
        raise CheckpointError(
            f"config {config.name} has no temporal transformer (pooling {config.model.pooling!r}); "
            f"the checkpoint has {found} temporal layers: convert into an EmoCLIP config instead"
        )
    if found != temporal.depth:
        raise CheckpointError(
            f"checkpoint has {found} temporal layers, config {config.name} expects {temporal.depth}"
        )


def verify_state(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size], name: str
) -> None:
    """Raise `CheckpointError` unless `state` has exactly `expected`'s keys and shapes.

    Args:
        state: Converted tensors.
        expected: Key -> shape of a freshly built model.
        name: Config name, for the message.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k])}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k])
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:5]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:5]})")
    if wrong:
        parts.append(f"{len(wrong)} with other shapes (checkpoint vs config: {wrong[:5]})")
    raise CheckpointError(f"converted checkpoint does not fit config {name}: " + "; ".join(parts))


def _cast(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors cast to `dtype` (fp16/bf16 -> fp32 by default), others unchanged.

    Tensors that share storage with an earlier one are copied (safetensors refuses shared
    storage, e.g. ``logit_scale`` and ``backbone.logit_scale`` taken from one CLIP tensor).
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        value = value.to(dtype) if value.is_floating_point() else value
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen:
            value = value.clone()
        seen.add(ptr)
        out[key] = value
    return out


# ----------------------------------------------------------------------------- text tower


def read_clip_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A CLIP state dict from a file, in OpenAI/open_clip key layout (no ``backbone.`` prefix).

    Accepts a plain CLIP state dict (``.safetensors``, or a pickle read with
    ``weights_only=True``), DDP-prefixed or not, or a VClip/EmoCLIP checkpoint (its
    ``backbone.*`` part is used).
    """
    state = strip_ddp_prefix(read_state_dict(path))
    if any(k.startswith("backbone.") for k in state) and "positional_embedding" not in state:
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return {k: v for k, v in state.items() if k not in _CLIP_NON_WEIGHTS}


def load_text_tower(
    config: EmoCLIPConfig,
    text_tower: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, torch.Tensor], str]:
    """The CLIP whose text tower (and logit scale) completes a visual-only checkpoint.

    Args:
        config: Target config; its ``model.backbone`` / ``backbone_pretrained`` name open_clip's
            pretrained weights, used when `text_tower` is None.
        text_tower: A local CLIP state dict file.
        cache_dir: Hugging Face cache folder for open_clip's pretrained weights.

    Returns:
        ``(clip_state_dict, where_it_came_from)``.

    Raises:
        CheckpointError: no text tower could be had; the message says how to provide one.
    """
    if text_tower is not None:
        path = Path(text_tower)
        if not path.is_file():
            raise CheckpointError(f"text tower file not found: {path}")
        return read_clip_state(path), path.name
    mc = config.model
    try:
        state = pretrained_backbone_state(mc, cache_dir=cache_dir)
    except (RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(
            "the checkpoint has no CLIP text tower (a DownstreamTask checkpoint holds only the "
            f"visual tower) and none could be found: {exc}. "
            f"To provide the text tower, {_TEXT_TOWER_HELP}."
        ) from exc
    where = pretrained_location(mc) or f"{mc.backbone}/{mc.backbone_pretrained}"
    name = f"{mc.backbone}/{mc.backbone_pretrained}"
    return strip_ddp_prefix(state), f"open_clip pretrained {name} ({where})"


def complete_text_tower(
    state: dict[str, torch.Tensor],
    needed: Sequence[str],
    clip_state: Mapping[str, torch.Tensor],
    source: str,
) -> None:
    """Fill `needed` keys of `state` in place from a CLIP state dict.

    ``backbone.X`` comes from ``X``; the top-level ``logit_scale`` from CLIP's ``logit_scale``
    (as the authors' ``VClip`` initialises it).
    """
    absent = []
    for key in needed:
        src_key = key[len("backbone.") :] if key.startswith("backbone.") else key
        if src_key in clip_state:
            state[key] = clip_state[src_key]
        else:
            absent.append(src_key)
    if absent:
        raise CheckpointError(
            f"the text tower from {source} lacks {len(absent)} tensors (e.g. {absent[:5]})"
        )


# ----------------------------------------------------------------------------- conversion


def _destination(dst: str | Path, config: EmoCLIPConfig) -> Path:
    """``dst`` itself, or ``dst/<config name>.safetensors`` when `dst` is a folder."""
    dst = Path(dst)
    if dst.is_dir():
        dst = dst / f"{config.name}.safetensors"
    if dst.suffix != ".safetensors":
        raise ValueError(f"the converted checkpoint must be a .safetensors file, not {dst.name}")
    return dst


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    config: str | EmoCLIPConfig = "emoclip-vitb32",
    text_tower: str | Path | None = None,
    cache_dir: str | Path | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Convert an authors' checkpoint into ``DST.safetensors`` + ``DST.json``.

    Args:
        src: The authors' file (``.pth``/``.pt``/``.bin`` read with ``weights_only=True``, or
            ``.safetensors``), VClip or DownstreamTask layout (see `detect_layout`).
        dst: Destination ``.safetensors`` file (or a folder: ``<config name>.safetensors``).
        config: Registry name, JSON config file or `EmoCLIPConfig` of the target architecture.
            Its ``name`` is kept, so ``load_model(NAME, weights_dirs=[dst folder])`` finds a
            file called ``NAME.safetensors``.
        text_tower: CLIP state dict that supplies the text tower and logit scale when the
            checkpoint lacks them (DownstreamTask); default: open_clip's pretrained weights
            of the config's backbone (cache first, then a download).
        cache_dir: Hugging Face cache folder for those pretrained weights.
        dtype: Store floating tensors in this dtype (default float32; the authors' CUDA
            checkpoints mix fp16 and fp32).

    Returns:
        The written weights path.

    Raises:
        CheckpointError: unreadable/unsafe source, unknown layout, a temporal depth other than
            the config's, missing text tower, or a result that does not fit the config.
    """
    cfg = resolve_config(config)
    src = Path(src)
    dst = _destination(dst, cfg)
    source = strip_ddp_prefix(read_state_dict(src))
    layout = detect_layout(source)
    check_temporal_depth(source, cfg)
    state = authors_to_emoclip(source, layout)
    dropped = dropped_keys(source, layout)
    if dropped:
        log.warning(
            "dropped %d tensors of the DownstreamTask classification head: %s",
            len(dropped),
            dropped,
        )
    expected = expected_shapes(cfg)
    provenance = {
        "converted_from": src.name,
        "source_sha256": file_sha256(src),
        "layout": layout,
        "dropped": dropped,
    }
    needed = text_tower_needed(state, expected)
    if needed:
        clip_state, where = load_text_tower(cfg, text_tower, cache_dir=cache_dir)
        complete_text_tower(state, needed, clip_state, where)
        provenance["text_tower"] = where
        log.info("took %d text-tower tensors and logit_scale from %s", len(needed), where)
    elif text_tower is not None:
        log.warning("the checkpoint has its own text tower; %s was not used", Path(text_tower).name)
    verify_state(state, expected, cfg.name)
    state = _cast({k: state[k] for k in expected}, dtype or torch.float32)
    out_config = cfg.replace(provenance={**cfg.provenance, **provenance})
    return save_checkpoint(state, out_config, dst)
