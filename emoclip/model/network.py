"""EmoCLIP: a CLIP image/text backbone plus a temporal model over frame embeddings.

Pure tensors in, tensors out: no disk, no network (loading lives in `emoclip.weights.factory`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from emoclip.model.backbone import create_backbone
from emoclip.model.config import EmoCLIPConfig
from emoclip.model.temporal import TemporalTransformer


class EmoCLIP(nn.Module):
    """Video-text model: ``encode_video`` and ``encode_text`` land in one embedding space.

    Args:
        config: Architecture and preprocessing (the checkpoint's JSON sidecar).

    Attributes:
        backbone: open_clip ``CLIP`` (image tower ``backbone.visual``, text tower).
        temporal: `TemporalTransformer`, or None for mean pooling (the CLIP baseline).
        logit_scale: log of the softmax temperature's inverse, as in CLIP (``exp`` gives ~100).
    """

    # Declared for type checkers (nn.Module.__getattr__ is typed `Tensor | Module`). The open_clip
    # CLIP is read by submodule name (``visual``, ``transformer``, ``text_projection`` ...): Any.
    backbone: Any
    temporal: TemporalTransformer | None
    logit_scale: nn.Parameter

    def __init__(self, config: EmoCLIPConfig) -> None:
        """Build the architecture of `config` (random weights).

        Raises:
            ValueError: `config` is out of `EmoCLIPConfig.check_bounds` (checked first).
        """
        config.check_bounds()  # before any allocation: a hostile config must not ask for 100 GB
        super().__init__()
        self.config = config
        self.backbone = create_backbone(config.model)
        dim = self.embed_dim
        mc = config.model
        self.temporal = None
        if mc.pooling == "cls":
            if mc.temporal is None:  # ModelConfig already refuses this; say so if it was bypassed
                raise ValueError("pooling 'cls' needs a temporal config")
            self.temporal = TemporalTransformer(dim, mc.temporal)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.source = "random initialisation"  # set by the loader: where the weights came from
        # set by the loader: which weights these are (an emoclip.weights.refs.ModelIdentity)
        self.identity: object | None = None

    @property
    def embed_dim(self) -> int:
        """D, the width of video and text embeddings."""
        return int(self.backbone.text_projection.shape[1])

    @property
    def context_length(self) -> int:
        """Token positions the text tower reads (77 for CLIP)."""
        return int(self.backbone.context_length)

    @property
    def image_size(self) -> int:
        """Side of the square frames the image tower takes."""
        return int(self.config.preprocess.image_size)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the weights."""
        return self.logit_scale.dtype

    @property
    def num_parameters(self) -> int:
        """Number of parameters (both towers, the temporal model and the logit scale)."""
        return sum(p.numel() for p in self.parameters())

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Frame embeddings.

        Args:
            images: (N, 3, H, W) CLIP-normalised float frames.

        Returns:
            (N, D) projected CLIP image features, not normalised.
        """
        return self.backbone.encode_image(images.to(self.dtype))

    def aggregate(self, frame_embeddings: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Pool per-frame embeddings of windows into video embeddings.

        Args:
            frame_embeddings: (B, T, D) un-normalised frame embeddings from `encode_image`.
            normalize: L2-normalise the result.

        Returns:
            (B, D): the temporal transformer's CLS output, or for mean pooling the mean of the
            L2-normalised frame embeddings.
        """
        if self.temporal is not None:
            video = self.temporal(frame_embeddings.to(self.dtype))
        else:
            video = F.normalize(frame_embeddings, dim=-1).mean(dim=1)
        return F.normalize(video, dim=-1) if normalize else video

    def encode_video(self, frames: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Video embeddings.

        Args:
            frames: (B, T, 3, H, W) CLIP-normalised float frames.
            normalize: L2-normalise the result.

        Returns:
            (B, D) video embeddings.
        """
        b, t = frames.shape[:2]
        per_frame = self.encode_image(frames.flatten(0, 1)).view(b, t, -1)  # (B, T, D)
        return self.aggregate(per_frame, normalize=normalize)

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Text embeddings.

        Args:
            tokens: (N, L) int64 token ids from `emoclip.tokenize`.
            normalize: L2-normalise the result.

        Returns:
            (N, D) embeddings: CLIP ``encode_text`` (EOT token @ text projection).
        """
        if not torch.is_grad_enabled():
            trimmed = _encode_text_trimmed(self.backbone, tokens, normalize)
            if trimmed is not None:
                return trimmed
        return self.backbone.encode_text(tokens, normalize=normalize)

    def forward(
        self, frames: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contrastive logits.

        Args:
            frames: (B, T, 3, H, W) CLIP-normalised float frames.
            tokens: (N, L) token ids.

        Returns:
            ``(logits_per_video (B, N), logits_per_text (N, B))``, scaled by ``exp(logit_scale)``.
        """
        video = self.encode_video(frames)
        text = self.encode_text(tokens)
        logits = self.logit_scale.exp() * video @ text.t()
        return logits, logits.t()


# ------------------------------------------------------------------------------------------------
# A cheaper text encoding for no-grad use: the same function as CLIP's ``encode_text``, with less
# work. The CPU inference fast paths of the image and temporal towers are in
# `emoclip.inference.fast_paths`.


def _encode_text_trimmed(clip: Any, tokens: torch.Tensor, normalize: bool) -> torch.Tensor | None:
    """CLIP ``encode_text`` on only the positions up to the last end-of-text token of the batch.

    With CLIP's causal mask the feature pooled at the end-of-text token never sees the padding
    after it, so dropping the padding changes nothing but the cost (a 10-token description runs
    ~8x fewer positions than the 77 of the context). Returns None when the text tower is not the
    plain causal open_clip one (the caller then runs the full context).
    """
    pool = getattr(clip, "text_pool_type", None)
    mask = getattr(clip, "attn_mask", None)
    if pool not in ("argmax", "eos") or mask is None or tokens.ndim != 2 or tokens.shape[0] == 0:
        return None
    if not all(
        hasattr(clip, a)
        for a in ("token_embedding", "positional_embedding", "transformer", "ln_final")
    ):
        return None
    if pool == "argmax":
        idx = tokens.argmax(dim=-1)
    else:
        eos = getattr(clip, "text_eos_id", None)
        if eos is None:
            return None
        idx = (tokens == eos).int().argmax(dim=-1)
    length = int(idx.max()) + 1
    if length >= tokens.shape[1]:
        return None
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens[:, :length]).to(cast_dtype)
    x = x + clip.positional_embedding[:length].to(cast_dtype)
    x = clip.transformer(x, attn_mask=mask[:length, :length])
    x = clip.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), idx]
    proj = clip.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return F.normalize(x, dim=-1) if normalize else x
