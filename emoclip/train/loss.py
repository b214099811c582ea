"""The contrastive objective: scaled cosine logits, the symmetric in-batch loss, the module DDP
wraps to embed a batch of clips and texts, and the gradient of one step over accumulated batches.

Gradient accumulation keeps the in-batch negatives of the whole accumulated batch
(`accumulate_gradients`): the features of all micro-batches are first computed without gradients,
then each micro-batch is recomputed with gradients and the loss over the full batch (the others'
features as constants) is back-propagated. The summed gradients equal those of one large batch (up
to float rounding and BatchNorm batch statistics), at the cost of one extra forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from emoclip.model.network import EmoCLIP
from emoclip.train import distributed as du

if TYPE_CHECKING:
    from torch.nn.parallel import DistributedDataParallel


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


def accumulate_gradients(
    wrapped: nn.Module,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    frame_level: bool,
    autocast: Callable[[], contextlib.AbstractContextManager],
    scaler: torch.amp.GradScaler,
    gather: bool = False,
    distributed: bool = False,
) -> tuple[float, tuple[torch.Tensor, torch.Tensor]]:
    """Back-propagate the contrastive loss of one optimiser step over the micro-batches `inputs`.

    Args:
        wrapped: The `ContrastiveModel` (DDP-wrapped when `distributed`).
        inputs: Per micro-batch, ``(frames (B, T, 3, H, W), tokens (B, L))`` on the model's device.
        frame_level: Embed frames, not clips (the frame-level warm-up).
        autocast: The run's autocast context.
        scaler: The run's GradScaler (scales the loss before ``backward``).
        gather: Logits over every rank's embeddings (`contrastive_logits`).
        distributed: `wrapped` is DDP: gradients are synchronised on the last micro-batch only.

    Returns:
        The loss over the union of the micro-batches (this rank's), and the detached normalised
        video and text embeddings it was computed on, (N, D) each (N = B x micro-batches).
    """
    cache = _feature_cache(wrapped, inputs, frame_level, autocast) if len(inputs) > 1 else None
    for j, (frames, tokens) in enumerate(inputs):
        last = j == len(inputs) - 1
        sync = (
            contextlib.nullcontext()
            if last or not distributed
            else cast("DistributedDataParallel", wrapped).no_sync()
        )
        with sync:
            with autocast():
                video, text, scale = wrapped(frames, tokens, frame_level)
            if cache is not None:  # this micro-batch with gradients, the others as constants
                video = torch.cat([*cache[0][:j], video, *cache[0][j + 1 :]])
                text = torch.cat([*cache[1][:j], text, *cache[1][j + 1 :]])
                scale = scale if last else scale.detach()  # logit_scale's gradient counted once
            loss = contrastive_loss(contrastive_logits(video, text, scale, gather=gather))
            scaler.scale(loss).backward()
    return float(loss.detach()), (video.detach(), text.detach())


@torch.no_grad()
def _feature_cache(
    wrapped: nn.Module,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    frame_level: bool,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> tuple[list, list]:
    """Every micro-batch's video and text embeddings, without gradients."""
    videos, texts = [], []
    for frames, tokens in inputs:
        with autocast():
            video, text, _ = wrapped(frames, tokens, frame_level)
        videos.append(video)
        texts.append(text)
    return videos, texts
