"""What analysing one video produces (`VideoEncoding`) and what producing it needs of a predictor.

`Encoder` is the predictor as the pipeline and the photo path see it (settings, frame encoding,
pooling, the shared face detector): they depend on this protocol, never on `EmotionPredictor`, so
imports go predictor -> pipeline and never back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from emoclip.inference.detector import LockedDetector
    from emoclip.model.config import PreprocessConfig

__all__ = ["Encoder", "NoFaceError", "Progress", "VideoEncoding"]

Progress = Callable[[float, str], None]  # (fraction done, message)


class Encoder(Protocol):
    """What the pipeline needs of the predictor that runs it (`EmotionPredictor` is one): its
    settings, frame encoding and pooling. The predictor imports the pipeline, never the reverse."""

    config: PreprocessConfig
    batch_size: int
    encode_workers: int
    prefetch: bool
    interpolate_faces: bool
    face_fallback: str
    max_faces: int
    min_face_score: float
    min_face_coverage: float

    def encode_images(
        self, crops: np.ndarray | Sequence[np.ndarray], *, workers: int | None = None
    ) -> torch.Tensor:
        """(N, S, S, 3) uint8 RGB crops -> (N, D) float32 un-normalised embeddings."""
        ...

    def pool_batch(self, jobs: list[tuple[torch.Tensor, np.ndarray]]) -> torch.Tensor:
        """``(frames (M, D), picks (B, T))`` pairs -> (sum B, D) L2-normalised video embeddings."""
        ...

    def track_frames_needed(self, sampled_frames: int) -> int:
        """Frames a face track needs to count as a person in a clip of `sampled_frames`."""
        ...

    def locked_detector(self) -> LockedDetector:
        """The shared face detector, safe to call from this video's decode thread."""
        ...


class NoFaceError(ValueError):
    """No face was found in any sampled frame and the fallback is "skip"."""


@dataclass
class VideoEncoding:
    """Everything `EmotionPredictor.score` needs about one video (no class information).

    Attributes:
        key: Cache key (content fingerprint + settings).
        times: (N,) times in seconds of all sampled frames.
        has_face: (N,) whether each sampled frame had a detected face.
        frame_embeddings: (M, D) un-normalised embeddings of the subject's frames.
        frame_times: (M,) their times.
        clip_embedding: (D,) L2-normalised clip embedding (T frames spread over the clip).
        window_starts: (W,) timeline window starts; window_ends: (W,) their ends.
        window_embeddings: (W, D) L2-normalised window embeddings.
        tracks: Per face track: (track_id, num_frames, start, end, (D,) embedding, primary).
        thumbnails: (time, (96, 96, 3) uint8 RGB crop) pairs along the clip.
        video: Metadata (name, duration, fps, width, height, rotation).
        timings: Seconds per stage.
        boxes: Face box ``(x, y, w, h)`` in pixels per track id, for still images (empty for videos).
        evidence: What `emoclip.evidence` pooled for this clip (the leave-one-out embeddings),
            kept so that re-scoring it against another class set pools nothing again.
    """

    key: str
    times: np.ndarray
    has_face: np.ndarray
    frame_embeddings: torch.Tensor
    frame_times: np.ndarray
    clip_embedding: torch.Tensor
    window_starts: np.ndarray
    window_ends: np.ndarray
    window_embeddings: torch.Tensor
    tracks: list[tuple[int, int, float, float, torch.Tensor, bool]]
    thumbnails: list[tuple[float, np.ndarray]]
    video: dict[str, Any]
    timings: dict[str, float]
    fallback: str
    detection: bool
    warnings: list[str] = field(default_factory=list)
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
