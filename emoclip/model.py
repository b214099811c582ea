"""EmoCLIP: a CLIP image/text backbone plus a temporal model over frame embeddings.

Pure tensors in, tensors out: no disk, no network (loading lives in `emoclip.factory`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import create_backbone
from .config import EmoCLIPConfig
from .temporal import TemporalTransformer


class EmoCLIP(nn.Module):
    """Video-text model: ``encode_video`` and ``encode_text`` land in one embedding space.

    Args:
        config: Architecture and preprocessing (the checkpoint's JSON sidecar).

    Attributes:
        backbone: open_clip ``CLIP`` (image tower ``backbone.visual``, text tower).
        temporal: `TemporalTransformer`, or None for mean pooling (the CLIP baseline).
        logit_scale: log of the softmax temperature's inverse, as in CLIP (``exp`` gives ~100).
    """

    def __init__(self, config: EmoCLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = create_backbone(config.model)
        dim = self.embed_dim
        mc = config.model
        self.temporal = TemporalTransformer(dim, mc.temporal) if mc.pooling == "cls" else None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.source = "random initialisation"  # set by the loader: where the weights came from

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
        return self.backbone.encode_text(tokens, normalize=normalize)

    def forward(self, frames: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
