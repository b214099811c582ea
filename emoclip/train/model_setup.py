"""The model to train: its architecture, initial weights and which parameters train."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from emoclip.model.config import EmoCLIPConfig, packaged_config_dir
from emoclip.model.network import EmoCLIP
from emoclip.train.errors import TrainSetupError
from emoclip.train.recipe import TrainConfig


def model_config(name: str, num_frames: int | None = None) -> EmoCLIPConfig:
    """The architecture to train: a registry name, a model-config JSON or a weights file's sidecar."""
    from emoclip.weights.files import read_config

    packaged = packaged_config_dir() / f"{name}.json"
    if name.endswith(".safetensors"):
        config = read_config(name)
    elif name.endswith(".json"):
        config = EmoCLIPConfig.load(name)
    elif packaged.is_file():
        config = EmoCLIPConfig.load(packaged)
    else:
        known = sorted(p.stem for p in packaged_config_dir().glob("*.json"))
        raise ValueError(
            f"model.name {name!r} is neither a packaged model config ({', '.join(known)}) "
            "nor a .json/.safetensors path"
        )
    if num_frames:
        config = config.replace(
            preprocess=dataclasses.replace(config.preprocess, num_frames=num_frames)
        )
    return config


def build_model(cfg: TrainConfig) -> tuple[EmoCLIP, bool]:
    """The model to train and whether its backbone holds the open_clip pretrained weights.

    A ``.safetensors`` ``model.name`` starts from those weights; otherwise the architecture is
    randomly initialised (seeded by the caller) and, with ``model.pretrained_backbone``, the
    backbone gets the open_clip weights the config names (e.g. OpenAI CLIP ViT-B/32).

    Raises:
        RuntimeError: the pretrained backbone is needed but neither cached nor downloadable.
    """
    config = model_config(cfg.model.name, cfg.model.num_frames)
    if cfg.model.name.endswith(".safetensors"):
        from safetensors import safe_open

        from emoclip.weights.factory import load_model

        model = load_model(cfg.model.name)
        model.config = config
        with safe_open(cfg.model.name, "pt") as f:
            has_backbone = any(k.startswith("backbone.") for k in f.keys())
        return model, bool(config.model.backbone_pretrained) and not has_backbone
    if not (cfg.model.pretrained_backbone and config.model.backbone_pretrained):
        return init_temporal(EmoCLIP(config), cfg.model.temporal_init), False
    state = pretrained_state(config)  # before building: fail fast when it is unavailable
    model = init_temporal(EmoCLIP(config), cfg.model.temporal_init)
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"pretrained backbone does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    with torch.no_grad():
        model.logit_scale.copy_(
            model.backbone.logit_scale.detach().reshape(())
        )  # as the authors' VClip
    return model, True


def init_temporal(model: EmoCLIP, how: str = "randn") -> EmoCLIP:
    """Initialise a new temporal model: "randn" keeps the authors' N(0, 1) CLS token and positions;
    "zero_cls" sets the CLS token to 0 and positions ~ N(0, 0.02), so the CLS query starts near 0
    and attention averages the frames (a mean-pool-like start rather than a near-constant output)."""
    if how == "zero_cls" and model.temporal is not None:
        with torch.no_grad():
            model.temporal.cls_token.zero_()
            model.temporal.pos_embedding.normal_(0.0, 0.02)
    return model


def pretrained_state(config: EmoCLIPConfig) -> dict[str, torch.Tensor]:
    """The open_clip backbone weights `config` names, with a clear message when unavailable."""
    from emoclip.weights.files import pretrained_backbone_state

    mc = config.model
    try:
        return pretrained_backbone_state(mc)
    except RuntimeError as exc:
        raise TrainSetupError(
            f"cannot load the pretrained backbone {mc.backbone}/{mc.backbone_pretrained}: {exc}. "
            "Download it once with network access (open_clip caches it), or train without it: "
            "model.pretrained_backbone=false (random init), or model.name=test-emoclip-tiny for a smoke test."
        ) from exc


def configure_trainable(
    model: EmoCLIP, cfg: TrainConfig, pretrained: bool
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Set ``requires_grad`` and split the trained parameters into (main, fine-tuned backbone).

    Main: the temporal model and ``logit_scale`` (and the whole backbone when it is not frozen,
    e.g. from scratch). Fine-tuned backbone (a frozen backbone's towers unfrozen by
    ``model.finetune_visual`` / ``model.finetune_text``): trained at lr x ``optim.backbone_lr_scale``.
    The text option unfreezes the text transformer blocks only, as the authors.
    """
    freeze = cfg.model.freeze_backbone if cfg.model.freeze_backbone is not None else pretrained
    model.requires_grad_(False)
    main = [model.logit_scale, *(model.temporal.parameters() if model.temporal is not None else [])]
    tuned: list[nn.Parameter] = []
    bb = model.backbone
    unused = {
        id(p) for n, p in bb.named_parameters(recurse=False) if n in ("logit_scale", "logit_bias")
    }
    if not freeze:
        main += [p for p in bb.parameters() if id(p) not in unused]
    else:
        if cfg.model.finetune_visual:
            tuned += list(bb.visual.parameters())
        if cfg.model.finetune_text:
            tuned += list(bb.transformer.parameters())
    for p in main + tuned:
        p.requires_grad_(True)
    return main, tuned


def frozen_names(model: nn.Module) -> list[str]:
    """Names of parameters that do not train (left out of the training state)."""
    return [n for n, p in model.named_parameters() if not p.requires_grad]
