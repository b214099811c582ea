"""LatentPoint: one clip or prototype of the latent explorer, and the kinds a point can be."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
                f"LatentPoint embedding must be 1-D (D,), got shape {self.embedding.shape}"
            )

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


class ClipSource(NamedTuple):
    """A clip-like point before it is scored: kind ("clip" | "example" | "uploaded"), display
    name, (D,) embedding, and the path of its media (None if there is none)."""

    kind: str
    name: str
    embedding: np.ndarray
    media: str | None = None


def latent_points(
    clips: Sequence[ClipSource],
    probabilities: np.ndarray,
    names: Sequence[str],
    prototypes: np.ndarray,
    n_classes: int,
) -> list[LatentPoint]:
    """The explorer's points: every clip (labelled by its top class), then every text prototype.

    Args:
        clips: The clip-like points.
        probabilities: (N, C) probabilities of the N clips over the C `names`.
        names: The class set's names (classes, then compounds).
        prototypes: (C, D) text embeddings of the names, in the same order.
        n_classes: How many of `names` are plain classes (the rest are compounds).

    Returns:
        N + C points; ids are unique (a repeated id gets " #2", " #3", ...), prototype ids are
        "class · NAME" / "compound · NAME", and a clip's hover is its name and its top 3.
    """
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(len(clips), len(names))
    if len(prototypes) != len(names):
        raise ValueError(f"{len(prototypes)} prototypes for {len(names)} names")
    kinds = ["class" if j < n_classes else "compound" for j in range(len(names))]
    ids = _unique_ids([c.name for c in clips] + [f"{k} · {n}" for k, n in zip(kinds, names)])
    points = [
        LatentPoint(
            id=ids[i],
            kind=c.kind,
            label=names[int(np.argmax(pr))],
            embedding=np.asarray(c.embedding, dtype=np.float32),
            hover=_hover(c.name, pr, names),
            media=c.media,
        )
        for i, (c, pr) in enumerate(zip(clips, probabilities))
    ]
    for j, (name, kind) in enumerate(zip(names, kinds)):
        points.append(
            LatentPoint(
                id=ids[len(clips) + j],
                kind=kind,
                label=name,
                embedding=prototypes[j],
                hover=f"text prototype of the {kind} {name}",
            )
        )
    return points


def _hover(name: str, probs: np.ndarray, names: Sequence[str]) -> str:
    """Plain-text hover (the figure escapes it): the clip and its top 3."""
    top = np.argsort(-probs)[:3]
    return f"{name}\n" + "\n".join(f"{names[j]}: {probs[j]:.1%}" for j in top)


def _unique_ids(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i} #{seen[i]}")
    return out
