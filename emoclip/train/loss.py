"""The contrastive objective: scaled cosine logits, the symmetric in-batch loss, and the module
DDP wraps to embed a batch of clips and texts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model import EmoCLIP
from . import distributed as du


def contrastive_logits(
    video: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, *, gather: bool = False
) -> torch.Tensor:
    """Scaled cosine logits between videos and texts.

    Args:
        video: (B, D) normalised video embeddings of this process.
        text: (B, D) normalised text embeddings, row i paired with video i.
        logit_scale: Log inverse temperature (scalar).
        gather: Use every rank's embeddings (`distributed.gather_features`): the logits then
            cover the global batch.

    Returns:
        (N, N) float32 ``logits_per_video``; N = B, or world_size * B with `gather`.
    """
    if gather:
        video, text = du.gather_features(video, text)
    return logit_scale.float().exp() * video.float() @ text.float().t()


def contrastive_loss(logits_per_video: torch.Tensor) -> torch.Tensor:
    """``(CE(logits_per_video, arange) + CE(logits_per_text, arange)) / 2`` (the authors')."""
    labels = torch.arange(logits_per_video.shape[0], device=logits_per_video.device)
    return (
        F.cross_entropy(logits_per_video, labels) + F.cross_entropy(logits_per_video.t(), labels)
    ) / 2


class ContrastiveModel(nn.Module):
    """What DDP wraps: embeds a batch of clips and texts through ``forward``.

    Args:
        model: The `EmoCLIP` being trained.
    """

    def __init__(self, model: EmoCLIP) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, frames: torch.Tensor, tokens: torch.Tensor, frame_level: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised video (B, D) and text (B, D) embeddings, and the logit scale.

        With `frame_level` the video embedding is the normalised mean of the normalised frame
        embeddings, bypassing the temporal model (the frame-level warm-up).
        """
        m = self.model
        if frame_level:  # frames (B, T', ...): T' = 1 for the "late" pick
            b, t = frames.shape[:2]
            per_frame = m.encode_image(frames.flatten(0, 1)).view(b, t, -1)
            video = F.normalize(F.normalize(per_frame, dim=-1).mean(1), dim=-1)
        else:
            video = m.encode_video(frames)
        # a non-leaf copy: DDP's unused-parameter search must see logit_scale as used
        return video, m.encode_text(tokens), m.logit_scale.clone()
