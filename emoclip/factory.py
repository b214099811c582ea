"""The model registry: named models, where their weights come from, and `load_model`.

Resolution order for a named model (first hit wins):

1. an explicit ``weights=`` file (for ``emoclip-vitb32`` also ``EMOCLIP_WEIGHTS``);
2. ``NAME.safetensors`` in ``weights_dirs``, ``EMOCLIP_WEIGHTS_DIR`` and ``./weights``;
3. the model's Hugging Face Hub repo (cache first, then a download when the Hub is reachable);
4. for backbone-only models (the CLIP baseline), open_clip's pretrained weights;
5. for ``test-*`` models, random initialisation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import EmoCLIPConfig, packaged_config_dir
from .model import EmoCLIP
from .weights import CheckpointError, load_checkpoint


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its packaged config and its weight sources."""

    name: str
    hub_repo: str | None = None  # Hub repo holding NAME.safetensors + NAME.json
    hub_repo_env: str | None = None  # environment variable that overrides hub_repo
    backbone_only: bool = False  # complete with open_clip pretrained backbone weights alone
    random_init: bool = False  # a test model: random weights are acceptable
    listed: bool = True  # shown by available_models()

    def repo(self) -> str | None:
        """The Hub repo in force (environment override included)."""
        return (os.environ.get(self.hub_repo_env) if self.hub_repo_env else None) or self.hub_repo

    def config(self) -> EmoCLIPConfig:
        """The packaged architecture/preprocessing config."""
        return EmoCLIPConfig.load(packaged_config_dir() / f"{self.name}.json")


_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("emoclip-vitb32", hub_repo="emoclip/emoclip-vitb32", hub_repo_env="EMOCLIP_HUB_REPO"),
        ModelSpec("clip-vitb32", backbone_only=True),
        ModelSpec("emoclip-synthetic-tiny", hub_repo=None, hub_repo_env="EMOCLIP_TINY_HUB_REPO"),
        ModelSpec("test-emoclip-tiny", random_init=True, listed=False),
        ModelSpec("test-clip-tiny", random_init=True, listed=False),
        ModelSpec("test-emoclip-vitb32", random_init=True, listed=False),
    )
}


class WeightsNotFoundError(FileNotFoundError):
    """No source could provide a model's weights; the message lists what was tried."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights would come from.

    Attributes:
        name: Registry name.
        available: Whether `load_model` would succeed without further action (downloads count
            when the Hub is reachable).
        kind: ``local`` | ``hub-cache`` | ``hub-download`` | ``open_clip-cache`` |
            ``open_clip-download`` | ``random`` | ``missing``.
        location: A path or ``hf-hub:repo/file``.
        summary: What the model is and is good for.
        tried: Every source looked at, with why it failed.
    """

    name: str
    available: bool
    kind: str
    location: str
    summary: str
    tried: tuple[str, ...] = ()

    def __str__(self) -> str:
        state = "available" if self.available else "not available"
        return f"{self.name:<24} {state:<14} {self.kind:<18} {self.location}"


def list_models(include_test: bool = False) -> list[str]:
    """Registered model names."""
    return [n for n, s in _MODELS.items() if s.listed or include_test]


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`."""
    try:
        return _MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models(True))}") from None


def _weights_dirs(extra: Sequence[str | Path]) -> list[Path]:
    dirs = [Path(d) for d in extra]
    if os.environ.get("EMOCLIP_WEIGHTS_DIR"):
        dirs += [Path(p) for p in os.environ["EMOCLIP_WEIGHTS_DIR"].split(os.pathsep) if p]
    dirs.append(Path.cwd() / "weights")
    return list(dict.fromkeys(dirs))


def resolve(
    name: str,
    *,
    weights: str | Path | None = None,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
    probe_network: bool = True,
) -> ModelSource:
    """Find where `name`'s weights would come from, without loading or downloading them.

    Takes at most a couple of seconds with no network (one short TCP probe of the Hub).
    """
    from . import backbone, hub

    spec = get_spec(name)
    summary = spec.config().summary
    tried: list[str] = []
    explicit = weights or (os.environ.get("EMOCLIP_WEIGHTS") if name == "emoclip-vitb32" else None)
    if explicit:
        path = Path(explicit)
        if path.is_file():
            return ModelSource(name, True, "local", str(path), summary)
        raise WeightsNotFoundError(f"weights file for {name} not found: {path}")
    for folder in _weights_dirs(weights_dirs):
        path = folder / f"{name}.safetensors"
        if path.is_file():
            return ModelSource(name, True, "local", str(path), summary, tuple(tried))
        tried.append(f"local file {path}: missing")
    repo = spec.repo()
    if repo:
        location = f"hf-hub:{repo}/{name}.safetensors"
        found = hub.cached_file(repo, f"{name}.safetensors", cache_dir=cache_dir)
        if found is not None and hub.cached_file(repo, f"{name}.json", cache_dir=cache_dir):
            return ModelSource(name, True, "hub-cache", str(found), summary, tuple(tried))
        if probe_network and hub.hub_online():
            return ModelSource(name, True, "hub-download", location, summary, tuple(tried))
        tried.append(f"{location}: not cached, Hub unreachable ({hub.offline_reason()})")
    if spec.backbone_only:
        model_cfg = spec.config().model
        location = backbone.pretrained_location(model_cfg) or "open_clip"
        from open_clip import pretrained as oc_pretrained

        pcfg = oc_pretrained.get_pretrained_cfg(model_cfg.backbone, model_cfg.backbone_pretrained or "")
        if pcfg and hub.cached_open_clip_file(pcfg, cache_dir=cache_dir) is not None:
            return ModelSource(name, True, "open_clip-cache", location, summary, tuple(tried))
        if probe_network and hub.hub_online():
            return ModelSource(name, True, "open_clip-download", location, summary, tuple(tried))
        tried.append(f"open_clip pretrained {location}: not cached, Hub unreachable ({hub.offline_reason()})")
    if spec.random_init:
        return ModelSource(name, True, "random", "random initialisation (test model)", summary, tuple(tried))
    return ModelSource(name, False, "missing", "", summary, tuple(tried))


def available_models(
    *, weights_dirs: Sequence[str | Path] = (), cache_dir: str | Path | None = None
) -> list[ModelSource]:
    """Every listed model and where its weights would come from (no loading, no download)."""
    return [resolve(n, weights_dirs=weights_dirs, cache_dir=cache_dir) for n in list_models()]


def load_model(
    name_or_path: str | Path = "emoclip-vitb32",
    *,
    device: str | torch.device = "cpu",
    weights: str | Path | None = None,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
) -> EmoCLIP:
    """Load a model by registry name or from a ``.safetensors`` file with its JSON sidecar.

    Args:
        name_or_path: Registry name (see `available_models`) or a weights file path.
        device: Where to put the model.
        weights: Explicit weights file for a registry name.
        weights_dirs: Extra folders searched for ``NAME.safetensors``.
        cache_dir: Hugging Face cache folder (default: huggingface_hub's).

    Returns:
        The model in eval mode, with ``model.source`` saying where the weights came from.

    Raises:
        WeightsNotFoundError: no source could provide the weights (the message lists them all).
        CheckpointError: a file was found but is corrupt, unsafe or does not fit its config.
    """
    text = str(name_or_path)
    if text.endswith((".safetensors", ".json")) or os.sep in text or Path(text).is_file():
        path = Path(text).with_suffix(".safetensors")
        if not path.is_file():
            raise WeightsNotFoundError(f"no weights file {path}")
        model = _from_checkpoint(path, cache_dir=cache_dir)
    else:
        model = _from_registry(text, weights=weights, weights_dirs=weights_dirs, cache_dir=cache_dir)
    return model.to(device).eval()


def _from_registry(name: str, **kwargs) -> EmoCLIP:
    from . import backbone, hub

    source = resolve(name, **kwargs)
    spec = get_spec(name)
    if not source.available:
        raise WeightsNotFoundError(_how_to_get(name, source))
    if source.kind in ("local", "hub-cache"):
        return _from_checkpoint(Path(source.location), cache_dir=kwargs.get("cache_dir"))
    if source.kind == "hub-download":
        repo = spec.repo()
        hub.download_file(repo, f"{name}.json", cache_dir=kwargs.get("cache_dir"))
        path = hub.download_file(repo, f"{name}.safetensors", cache_dir=kwargs.get("cache_dir"))
        return _from_checkpoint(path, cache_dir=kwargs.get("cache_dir"))
    model = EmoCLIP(spec.config())
    if source.kind.startswith("open_clip"):
        state = backbone.pretrained_backbone_state(model.config.model, cache_dir=kwargs.get("cache_dir"))
        _load_backbone(model, state)
        model.source = f"open_clip pretrained {source.location}"
    else:
        model.source = source.location
    return model


def _load_backbone(model: EmoCLIP, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"pretrained backbone does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with torch.no_grad():
        model.logit_scale.copy_(model.backbone.logit_scale.detach().reshape(()))


def _from_checkpoint(path: Path, *, cache_dir: str | Path | None = None) -> EmoCLIP:
    """Build from the sidecar config, then load tensors; fill a frozen backbone from open_clip."""
    from .backbone import pretrained_backbone_state

    config, state = load_checkpoint(path)
    model = EmoCLIP(config)
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if unexpected:
        raise CheckpointError(f"{path.name} has tensors this architecture lacks: {unexpected[:5]}")
    if any(not k.startswith("backbone.") for k in missing):
        raise CheckpointError(f"{path.name} lacks tensors: {[k for k in missing if not k.startswith('backbone.')][:5]}")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(f"{path.name}: {key} has shape {tuple(tensor.shape)}, "
                                  f"the config expects {tuple(expected[key].shape)}")
    if missing:  # a checkpoint of the trained parts only: the frozen backbone comes from open_clip
        logit_scale = state.get("logit_scale")
        _load_backbone(model, pretrained_backbone_state(config.model, cache_dir=cache_dir))
        if logit_scale is not None:
            state["logit_scale"] = logit_scale
    model.load_state_dict(state, strict=False)
    model.source = str(path)
    return model


def _how_to_get(name: str, source: ModelSource) -> str:
    lines = [f"no weights for model {name!r}. Tried:"] + [f"  - {t}" for t in source.tried]
    lines.append("How to get weights:")
    if name == "emoclip-vitb32":
        lines += [
            "  - convert the authors' released checkpoint: emoclip convert AUTHORS.pth weights/emoclip-vitb32.safetensors",
            "  - or train one: python -m emoclip.train --config <config.yaml> (see README, Training)",
            "  - or connect to the Hugging Face Hub (unset HF_HUB_OFFLINE) / set EMOCLIP_HUB_REPO",
        ]
    elif name == "emoclip-synthetic-tiny":
        lines.append("  - it ships in the repository's weights/ folder; run from the repository root or pass --weights-dir")
    else:
        lines.append("  - connect to the Hugging Face Hub once (the weights are then cached), or pass a local file")
    return "\n".join(lines)
