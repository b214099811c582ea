"""Live-stream scoring: a ring buffer of the last T frame embeddings, scored as one window.

A webcam (or any frame source) gives one frame at a time; each frame's largest face is cropped
and embedded into a `LiveWindow`, and the window's probabilities are those of the pooled
(temporal model) embedding of the frames it holds, as for a T-frame window of a video file.

The window holds embeddings only, no model: it can live in per-user state while the predictor
(weights, face detector, text cache) is shared.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.classes import ClassSet
    from emoclip.inference.predictor import EmotionPredictor


def crop_frame(predictor: EmotionPredictor, image: np.ndarray) -> tuple[np.ndarray | None, bool]:
    """The largest face of one (H, W, 3) uint8 RGB frame as a model-sized crop.

    Returns:
        ``(crop (S, S, 3) uint8 or None, face_found)``; without a face the crop is the centre
        crop, or None when the predictor's fallback is "skip".
    """
    from emoclip.faces import center_crop, crop_square

    cfg, st = predictor.parts.config, predictor.settings
    size = cfg.image_size
    if not cfg.face_detection:
        return center_crop(image, size), True
    boxes = [b for b in predictor.parts.faces.detect(image) if b.score >= st.min_face_score]
    if boxes:
        return crop_square(image, boxes[0], margin=cfg.face_margin, size=size), True
    return (center_crop(image, size) if st.face_fallback == "center" else None), False


class LiveWindow:
    """The last `size` frame embeddings of a stream, and how many frames (with a face) it saw.

    Args:
        size: T, the frames kept (normally the model's ``num_frames``).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a live window holds at least 1 frame, not {size}")
        self.size = int(size)
        self._embeddings: deque[torch.Tensor] = deque(maxlen=self.size)
        self.frames = 0  # frames given to `add_frame`
        self.faces = 0  # of which had a face

    def __len__(self) -> int:
        """Frame embeddings held (at most `size`)."""
        return len(self._embeddings)

    def add(self, embedding: torch.Tensor) -> None:
        """Append one (D,) un-normalised frame embedding, dropping the oldest when full."""
        if embedding.ndim != 1:
            raise ValueError(f"a frame embedding is (D,), not {tuple(embedding.shape)}")
        self._embeddings.append(embedding)

    def add_frame(self, predictor: EmotionPredictor, frame: np.ndarray) -> tuple[bool, bool]:
        """Crop the largest face of `frame`, embed it, append it.

        Args:
            predictor: Crops (its face detector and fallback) and embeds (its image tower).
            frame: (H, W, 3) or (H, W, 4) uint8 RGB(A) image; alpha is ignored.

        Returns:
            ``(face_found, added)``: without a face the predictor's fallback decides: the centre
            crop is added ("center"), or nothing ("skip").
        """
        crop, found = crop_frame(predictor, np.ascontiguousarray(frame[..., :3]))
        self.frames += 1
        self.faces += int(found)
        if crop is not None:
            self.add(predictor.parts.encoder.encode(crop[None])[0])
        return found, crop is not None

    def embedding(self, predictor: EmotionPredictor) -> torch.Tensor | None:
        """(D,) L2-normalised video embedding of the frames held; None when empty."""
        if not self._embeddings:
            return None
        return predictor.parts.pooler.pool(torch.stack(list(self._embeddings)))

    def probabilities(
        self, predictor: EmotionPredictor, classes: ClassSet | None = None
    ) -> np.ndarray | None:
        """(C,) float32 probabilities of the window against `classes` (default: the model's own),
        in ``classes.names`` order; None when the window is empty."""
        video = self.embedding(predictor)
        if video is None:
            return None
        return predictor.score(video.numpy(), classes)

    def clear(self) -> None:
        """Drop the embeddings and the counts."""
        self._embeddings.clear()
        self.frames = self.faces = 0
