"""Building CLIP backbones with open_clip (architecture only: no disk, no network).

Fetching pretrained backbone weights is on the weights side (`emoclip.weights`). open_clip is
imported inside the functions, so ``import emoclip`` stays cheap.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from .config import ModelConfig

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def backbone_config(config: ModelConfig) -> dict[str, Any]:
    """The open_clip architecture dict (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...)."""
    if config.backbone_config is not None:
        return copy.deepcopy(config.backbone_config)
    import open_clip

    found = open_clip.get_model_config(config.backbone)
    if found is None:
        raise ValueError(
            f"open_clip has no architecture named {config.backbone!r}; "
            "give the architecture inline as model.backbone_config"
        )
    return copy.deepcopy(found)


def create_backbone(config: ModelConfig) -> nn.Module:
    """A randomly initialised open_clip ``CLIP`` for `config` (no disk, no network)."""
    from open_clip.model import CLIP

    cfg = backbone_config(config)
    cfg.pop("custom_text", None)
    if "hf_model_name" in cfg.get("text_cfg", {}):
        raise ValueError("backbones with Hugging Face text towers are not supported")
    return CLIP(**cfg)
