"""LatentPoint: one clip or prototype of the latent explorer, and the kinds a point can be."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("clip", "example", "uploaded", "class", "compound")
PROTOTYPE_KINDS = ("class", "compound")
MAX_ID_CHARS = 200  # characters of an id or label shown or loaded
MAX_HOVER_CHARS = 2000  # characters of hover text shown or loaded



@dataclass
class LatentPoint:
    """One point of the latent explorer.

    Attributes:
        id: unique-ish display id (clip file name, class name, ...).
        kind: one of ``KINDS``: "clip" | "example" | "uploaded" (clip-like) or "class" | "compound"
            (text prototypes).
        label: predicted class for clips, the class name for prototypes; decides the colour.
        embedding: (D,) embedding (any scale; projections normalise).
        hover: extra hover text, e.g. the top-3 with probabilities; newlines become line breaks.
        media: path of the clip to show when the point is picked (never saved or loaded).
    """

    id: str
    kind: str
    label: str
    embedding: np.ndarray
    hover: str = ""
    media: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"LatentPoint kind must be one of {KINDS}, got {self.kind!r}")
        self.embedding = np.asarray(self.embedding)
        if self.embedding.ndim != 1:
            raise ValueError(
                f"LatentPoint embedding must be 1-D (D,), got shape {self.embedding.shape}")

    @property
    def is_prototype(self) -> bool:
        return self.kind in PROTOTYPE_KINDS


def stack_embeddings(points: Sequence[LatentPoint]) -> np.ndarray:
    """(N, D) float32 array of the points' embeddings; ValueError if the dimensions differ."""
    if not points:
        raise ValueError("no points")
    dims = {p.embedding.shape[0] for p in points}
    if len(dims) != 1:
        raise ValueError(f"points have different embedding dimensions: {sorted(dims)}")
    return np.stack([np.asarray(p.embedding, dtype=np.float32) for p in points])
