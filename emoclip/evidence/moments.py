"""Key moments: each frame of the sequence a clip's answer pools is removed in turn, the rest is
re-pooled and re-scored, and the drop of the top class's probability is the frame's support.

The moments are the frames the answer actually pools: a clip's answer pools `num_frames` (T)
frames spread over the clip (`emoclip.media.sample_indices` over the subject's frames, the same
picks the pipeline pools), so a long clip gets T moments, each standing for the stretch of clip
around it (about duration / T seconds), rather than one moment per sampled frame. When a short
clip has fewer frames than T the picks repeat frames; removing a frame removes every repeat.

Only cached frame embeddings are used: no frame is decoded or encoded. The leave-one-out
sequences are grouped by length and each group is pooled as one batch (one call of the pooler),
so the cost is about that of pooling T timeline windows. The same removal applies to a model
whose pooling is the mean of the frames (the CLIP baseline): the pooler decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from emoclip.zeroshot import probabilities

__all__ = ["Pooler", "LeaveOneOut", "clip_picks", "leave_one_out", "stretches"]

Pooler = Callable[[torch.Tensor], torch.Tensor]
"""(B, L, D) un-normalised frame embeddings -> (B, D) L2-normalised video embeddings."""


@dataclass(frozen=True)
class LeaveOneOut:
    """The clip pooled once without each distinct frame it pools (no class information: a class
    set's edit re-scores these embeddings without pooling again).

    Attributes:
        frames: (K,) the removed frames (rows of the frame embeddings), in time order.
        videos: (K, D) L2-normalised video embeddings of the clip without each of them.
        calls: Pooler calls made (one per distinct sequence length).
    """

    frames: np.ndarray
    videos: torch.Tensor
    calls: int

    def probabilities(self, text: torch.Tensor, logit_scale: torch.Tensor | float) -> np.ndarray:
        """(K, C) the clip's probabilities against (C, D) class embeddings without each frame."""
        if not len(self.frames):
            return np.zeros((0, len(text)), dtype=np.float32)
        return probabilities(self.videos, text, logit_scale).numpy()


def clip_picks(num_frames_available: int, num_frames: int) -> np.ndarray:
    """(T,) the rows of the frame embeddings the clip's answer pools (the pipeline's picks)."""
    from emoclip.media import sample_indices

    return sample_indices(num_frames_available, num_frames)


def leave_one_out(frame_embeddings: torch.Tensor, picks: np.ndarray, pool: Pooler) -> LeaveOneOut:
    """Re-pool the clip once per distinct frame of `picks`, without that frame.

    Args:
        frame_embeddings: (M, D) un-normalised frame embeddings (the encoding's cache).
        picks: (T,) rows of `frame_embeddings` the clip pools, non-decreasing.
        pool: The model's pooler (temporal model or mean), batched.

    Returns:
        A `LeaveOneOut`; no frames when `picks` holds fewer than two distinct frames.
    """
    picks = np.asarray(picks, dtype=np.int64)
    frames = np.unique(picks)
    dim = frame_embeddings.shape[-1]
    if len(frames) < 2:
        return LeaveOneOut(frames[:0], torch.zeros(0, dim), 0)
    kept = [picks[picks != f] for f in frames]
    videos = torch.zeros(len(frames), dim)
    calls = 0
    for length in sorted({len(k) for k in kept}):
        rows = [i for i, k in enumerate(kept) if len(k) == length]
        batch = frame_embeddings[torch.as_tensor(np.stack([kept[i] for i in rows]))]  # (B, L, D)
        videos[torch.as_tensor(rows)] = pool(batch).float()
        calls += 1
    return LeaveOneOut(frames, videos, calls)


def stretches(times: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """The stretch of clip each of the sorted `times` ((K,) seconds) stands for: from halfway to
    the previous one (or 0) to halfway to the next one (or `duration`). Returns (starts, ends)."""
    times = np.asarray(times, dtype=np.float64)
    if not len(times):
        return times, times
    mids = (times[1:] + times[:-1]) / 2
    starts = np.concatenate([[0.0], mids])
    ends = np.concatenate([mids, [max(float(duration), float(times[-1]))]])
    return starts, ends
