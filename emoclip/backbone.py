"""The only module that talks to open_clip: building CLIP backbones and fetching their weights.

open_clip is imported inside the functions, so ``import emoclip`` stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model_config import ModelConfig, backbone_config

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def create_backbone(config: ModelConfig) -> nn.Module:
    """A randomly initialised open_clip ``CLIP`` for `config` (no disk, no network)."""
    from open_clip.model import CLIP

    cfg = backbone_config(config)
    cfg.pop("custom_text", None)
    if "hf_model_name" in cfg.get("text_cfg", {}):
        raise ValueError("backbones with Hugging Face text towers are not supported")
    return CLIP(**cfg)


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
        from .weights import read_state_dict

        return read_state_dict(tag)
    pcfg = oc_pretrained.get_pretrained_cfg(config.backbone, tag)
    if not pcfg:
        raise RuntimeError(f"open_clip knows no pretrained tag {tag!r} for {config.backbone}")
    from . import hub_download

    if offline or not hub_download.hub_online():
        path = hub_download.cached_open_clip_file(pcfg, cache_dir=cache_dir)
        if path is None:
            raise RuntimeError(
                f"pretrained CLIP weights {config.backbone}/{tag} are not in the local cache "
                f"and the Hugging Face Hub is not reachable ({hub_download.offline_reason()})"
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
