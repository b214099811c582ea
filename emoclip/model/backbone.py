"""Building CLIP backbones with open_clip (architecture only: no disk, no network).

Fetching pretrained backbone weights is on the weights side (`emoclip.weights.files`). open_clip is
imported inside the functions, so ``import emoclip`` stays cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from emoclip.model.config import ModelConfig, backbone_config

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
