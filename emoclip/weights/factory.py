"""Model loading: `load_model` builds an `EmoCLIP` from a registry name or a checkpoint file.

Which models exist, their policy and where their weights would come from is `emoclip.weights.registry`
(`ModelSpec`, `resolve`, `best_available`, ...); this module loads what `resolve` found: a local
``.safetensors`` file with its JSON sidecar, the Hub (the sidecar is downloaded first and its
architecture checked against `EmoCLIPConfig.check_bounds`, then the weights, whose sha256 must
match the sidecar's), open_clip's pretrained backbone, or random initialisation (test models).

The registry's names are imported from `emoclip.weights.registry`, where they are defined; the
package `emoclip` re-exports the public ones (`emoclip.available_models`, `emoclip.ModelSource`, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from emoclip.model.config import EmoCLIPConfig
from emoclip.model.network import EmoCLIP
from emoclip.settings import ModelLocations
from emoclip.weights.files import CheckpointError, load_checkpoint, pretrained_backbone_state
from emoclip.weights.refs import hub_label, hub_parts, identify_model, ref_kind
from emoclip.weights.registry import (
    WeightsNotFoundError,
    get_spec,
    how_to_get_message,
    resolve,
)

__all__ = [
    "load_model",
]

log = logging.getLogger(__name__)


def load_model(
    name_or_path: str | Path = "emoclip-vitb32",
    *,
    device: str | torch.device = "cpu",
    weights: str | Path | None = None,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
    locations: ModelLocations | None = None,
) -> EmoCLIP:
    """Load a model by registry name or from a ``.safetensors`` file with its JSON sidecar.

    Args:
        name_or_path: A model reference (`emoclip.weights.refs`): a registry name (see
            `available_models`), a ``.safetensors`` file path or a Hub id ``owner/name[@rev]``.
        device: Where to put the model.
        weights: Explicit weights file for a registry name.
        weights_dirs: Extra folders searched for ``NAME.safetensors``.
        cache_dir: Hugging Face cache folder (default: huggingface_hub's).
        locations: Where a registry name's weights are looked for: explicit files, extra
            folders, Hub repo and revision (`emoclip.settings.ModelLocations`; default: no
            overrides, the environment is not read; the CLI passes `ModelLocations.from_env()`).

    Returns:
        The model in eval mode, with ``model.source`` saying where the weights came from and
        ``model.identity`` (a `ModelIdentity`) which weights they are.

    Raises:
        ModelRefError: `name_or_path` is neither a file, a registry name nor a Hub id.
        WeightsNotFoundError: no source could provide the weights (the message lists them all).
        CheckpointError: a file was found but is corrupt, unsafe or does not fit its config.
    """
    text = str(name_or_path).strip()
    kind = ref_kind(text)  # the one reading of a model reference (emoclip.weights.refs)
    if kind == "file":
        path = Path(text).expanduser().with_suffix(".safetensors")
        if not path.is_file():
            raise WeightsNotFoundError(f"no weights file {path}")
        model = _from_checkpoint(path, cache_dir=cache_dir)
    elif kind == "hub":
        model = _from_hub_id(text, cache_dir=cache_dir)
    else:
        model = _from_registry(
            text,
            weights=weights,
            weights_dirs=weights_dirs,
            cache_dir=cache_dir,
            locations=locations,
        )
    if kind != "registry" or weights is None:  # an explicit weights= file is its own identity
        model.identity = identify_model(
            text, weights_dirs=weights_dirs, cache_dir=cache_dir, locations=locations
        )
    else:
        model.identity = identify_model(weights, cache_dir=cache_dir)
    return model.to(device).eval()


def _from_hub_id(ref: str, *, cache_dir: str | Path | None = None) -> EmoCLIP:
    """A model from a Hub id ``owner/name[@revision]``: the sidecar first (architecture bounds
    checked), then the weights, whose sha256 the sidecar must record and match."""
    from emoclip.weights import hub
    from emoclip.weights.files import read_config

    repo, filename, revision = hub_parts(ref)
    label = hub_label(repo, revision)
    if "(unpinned)" in label:
        log.warning("%s: weights not pinned to a commit; use %s@<commit hash>", ref, repo)
    side = hub.download_file(
        repo, filename.replace(".safetensors", ".json"), revision=revision, cache_dir=cache_dir
    )
    read_config(Path(side).with_suffix(".safetensors"))  # bounds checked before the download
    path = hub.download_file(repo, filename, revision=revision, cache_dir=cache_dir)
    model = _from_checkpoint(Path(path), cache_dir=cache_dir, require_sha256=True)
    model.source = f"hf-hub:{label.split(' ')[0]}/{filename} (sha256 verified)"
    return model


def _from_registry(name: str, **kwargs: Any) -> EmoCLIP:
    from emoclip.weights import hub

    source = resolve(name, **kwargs)
    spec = get_spec(name)
    where = kwargs.get("locations")
    if not source.available:
        raise WeightsNotFoundError(how_to_get_message(name, source))
    if source.kind == "local":
        return _from_checkpoint(Path(source.path), cache_dir=kwargs.get("cache_dir"))
    if source.kind in ("hub-cache", "hub-download"):
        if "(unpinned)" in source.location:
            log.warning(
                "%s: weights from %s, not pinned to a commit; set %s to a commit hash",
                name,
                spec.hub_label(where),
                spec.variable("hub_revision") or "the Hub revision",
            )
        if source.kind == "hub-cache":
            path = Path(source.path)
        else:
            repo, revision = spec.repo(where), spec.revision(where)
            assert repo is not None  # resolve() found one
            side = hub.download_file(
                repo, f"{name}.json", revision=revision, cache_dir=kwargs.get("cache_dir")
            )
            from emoclip.weights.files import read_config

            read_config(
                Path(side).with_suffix(".safetensors")
            )  # bounds checked before the weights download
            path = hub.download_file(
                repo, f"{name}.safetensors", revision=revision, cache_dir=kwargs.get("cache_dir")
            )
        model = _from_checkpoint(path, cache_dir=kwargs.get("cache_dir"), require_sha256=True)
        model.source = f"{source.location} (sha256 verified)"
        return model
    model = EmoCLIP(spec.config())
    if source.kind.startswith("open_clip"):
        state = pretrained_backbone_state(model.config.model, cache_dir=kwargs.get("cache_dir"))
        _load_backbone(model, state)
        model.source = f"open_clip pretrained {source.location}"
    else:
        model.source = source.location
    return model


def _load_backbone(model: EmoCLIP, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"pretrained backbone does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    with torch.no_grad():
        model.logit_scale.copy_(model.backbone.logit_scale.detach().reshape(()))


def _from_checkpoint(
    path: Path, *, cache_dir: str | Path | None = None, require_sha256: bool = False
) -> EmoCLIP:
    """Build from the sidecar config (bounds-checked), then load tensors (sha256-verified, and
    required to be recorded with `require_sha256`); fill a frozen backbone from open_clip."""
    config, state = load_checkpoint(path, require_sha256=require_sha256)
    model = _skeleton(config)
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if unexpected:
        raise CheckpointError(f"{path.name} has tensors this architecture lacks: {unexpected[:5]}")
    if any(not k.startswith("backbone.") for k in missing):
        raise CheckpointError(
            f"{path.name} lacks tensors: {[k for k in missing if not k.startswith('backbone.')][:5]}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{path.name}: {key} has shape {tuple(tensor.shape)}, "
                f"the config expects {tuple(expected[key].shape)}"
            )
    if missing:  # a checkpoint of the trained parts only: the frozen backbone comes from open_clip
        model = EmoCLIP(config)  # built in memory (random weights, replaced by the copies below)
        logit_scale = state.get("logit_scale")
        _load_backbone(model, pretrained_backbone_state(config.model, cache_dir=cache_dir))
        if logit_scale is not None:
            state["logit_scale"] = logit_scale
        model.load_state_dict(state, strict=False)
    else:
        model = _assign_state(model, config, state, expected)
    model.source = str(path)
    return model


def _skeleton(config: EmoCLIPConfig) -> EmoCLIP:
    """The architecture of `config` with its tensors on the meta device (nothing allocated),
    or in memory when it cannot be built there."""
    try:
        with torch.device("meta"):
            return EmoCLIP(config)
    except (RuntimeError, NotImplementedError, TypeError):
        return EmoCLIP(config)


def _assign_state(
    model: EmoCLIP,
    config: EmoCLIPConfig,
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
) -> EmoCLIP:
    """`model` holding the checkpoint's tensors themselves (``load_state_dict(assign=True)``).

    A safetensors file's tensors live in its private memory map, so the weights are not copied
    into a second buffer: a weight costs resident memory once read, and `emoclip.inference.memory` can give
    its pages back once a fast path holds its own copy. Tensors stored in another dtype are cast
    (copied) to the model's. Non-persistent buffers a meta skeleton lacks (CLIP's causal text
    mask) are rebuilt; when one is not understood, the model is built in memory instead.
    """
    state = {
        k: v if v.dtype == expected[k].dtype else v.to(expected[k].dtype) for k, v in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            if (
                attr == "attn_mask"
                and buf.ndim == 2
                and buf.shape[0] == buf.shape[1]
                and buf.is_floating_point()
            ):
                mask = torch.full(tuple(buf.shape), float("-inf"), dtype=buf.dtype).triu_(
                    1
                )  # CLIP's causal mask
                owner.register_buffer(attr, mask, persistent=False)
            else:
                model = EmoCLIP(config)
                model.load_state_dict(state, strict=True, assign=True)
                break
    return model
