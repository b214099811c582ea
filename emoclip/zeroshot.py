"""Zero-shot scoring: class-description embeddings, compounds, probabilities.

A class's embedding is the L2-normalised mean of its descriptions' normalised embeddings; a
compound's is the L2-normalised (weighted) mean of its parts' class embeddings; probabilities are
``softmax(exp(logit_scale) * cos(video, class))``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F

from emoclip.model.tokenizer import tokenize

if TYPE_CHECKING:
    from emoclip.classes import ClassSet
    from emoclip.model.network import EmoCLIP


class TextScorer(Protocol):
    """What `compound_preview` needs of a predictor (`EmotionPredictor` is one): zeroshot sits
    below the inference subpackage and never imports it."""

    def class_embeddings(self, classes: ClassSet) -> torch.Tensor: ...

    def score(self, encoding: Any, classes: ClassSet | None = None) -> Any: ...


class TextEmbeddingCache:
    """Normalised text embeddings keyed by exact text; only unseen texts are encoded.

    Thread-safe; bounded (least recently used texts are dropped first).

    Args:
        model: The model whose text tower embeds the texts.
        max_entries: Cache size in texts.
        batch_size: Texts encoded per forward pass.
    """

    def __init__(self, model: EmoCLIP, max_entries: int = 4096, batch_size: int = 64) -> None:
        self.model = model
        self.max_entries = max_entries
        self.batch_size = batch_size
        self._store: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0  # texts encoded so far (tests and benchmarks read it)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, text: object) -> bool:
        """Whether `text`'s embedding is cached."""
        return text in self._store

    def clear(self) -> None:
        """Forget every cached embedding (the count `encoded` is kept)."""
        with self._lock:
            self._store.clear()

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings of `texts`.

        Returns:
            (N, D) float32 L2-normalised embeddings, in the order of `texts`.
        """
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._store))
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                for text, emb in zip(chunk, self._encode(chunk)):
                    self._store[text] = emb
                self.encoded += len(chunk)
            out = []
            for text in texts:
                self._store.move_to_end(text)
                out.append(self._store[text])
            while len(self._store) > max(self.max_entries, len(texts)):
                self._store.popitem(last=False)
        if not out:
            return torch.empty(0, self.model.embed_dim)
        return torch.stack(out)

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> torch.Tensor:
        device = self.model.logit_scale.device
        tokens = tokenize(texts, context_length=self.model.context_length).to(device)
        return self.model.encode_text(tokens, normalize=True).float().cpu()


def compound_embedding(
    embeddings: torch.Tensor, weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Embedding of a compound emotion from its parts.

    Args:
        embeddings: (K, D) embeddings of the K parts (normalised here first).
        weights: K positive weights (normalised to sum 1); None for equal weights.

    Returns:
        (D,) L2-normalised weighted mean of the normalised part embeddings.
    """
    parts = F.normalize(embeddings.float(), dim=-1)
    if weights is None:
        w = torch.full((parts.shape[0],), 1.0 / parts.shape[0])
    else:
        w = torch.as_tensor(list(weights), dtype=torch.float32)
        if (
            w.shape != (parts.shape[0],)
            or not bool((w > 0).all())
            or not bool(torch.isfinite(w).all())
        ):
            raise ValueError("compound weights must be one positive finite number per part")
        w = w / w.sum()
    return F.normalize((w[:, None] * parts).sum(0), dim=-1)


def class_embeddings(class_set: ClassSet, cache: TextEmbeddingCache) -> torch.Tensor:
    """Embeddings of every class, then every compound, in ``class_set.names`` order.

    Returns:
        (C, D) float32 L2-normalised.
    """
    texts = class_set.texts
    table = dict(zip(texts, cache.embed(texts)))
    by_name: dict[str, torch.Tensor] = {}
    for cls in class_set.classes:
        mean = torch.stack([table[d] for d in cls.descriptions]).mean(0)
        by_name[cls.name] = F.normalize(mean, dim=-1)
    rows = [by_name[c.name] for c in class_set.classes]
    for comp in class_set.compounds:
        parts = torch.stack([by_name[p] for p in comp.parts])
        rows.append(compound_embedding(parts, comp.weights))
    return torch.stack(rows)


def probabilities(
    video: torch.Tensor, classes: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """Zero-shot class probabilities.

    Args:
        video: (B, D) video embeddings (normalised here).
        classes: (C, D) class embeddings (normalised here).
        logit_scale: log of the inverse temperature (the model's ``logit_scale``).

    Returns:
        (B, C) float32, rows summing to 1.
    """
    scale = torch.as_tensor(logit_scale, dtype=torch.float32).exp()
    cos = F.normalize(video.float(), dim=-1) @ F.normalize(classes.float(), dim=-1).t()
    return (scale * cos).softmax(dim=-1)


@dataclass(frozen=True)
class CompoundPreview:
    """What a compound would be before it is added: its nearest classes and its score on a video.

    Attributes:
        nearest: (class name, cosine of its text embedding with the compound's) for every
            plain class of the candidate set (compounds left out), best first.
        probability: The compound's probability on the video; None without a video.
        rank: Its rank among all the candidate set's names on the video (1 = top); None without.
        of: The number of names it is ranked among.
    """

    nearest: list[tuple[str, float]]
    probability: float | None
    rank: int | None
    of: int


def compound_preview(
    predictor: TextScorer,
    candidate: ClassSet,
    name: str,
    encoding: Any | None = None,
) -> CompoundPreview:
    """Nearest classes of the compound `name` of `candidate` and, with a video, its score on it.

    Args:
        predictor: Embeds the texts (its text cache) and scores the video.
        candidate: A class set holding the compound `name` (exact spelling).
        name: The compound's name.
        encoding: An encoded video (`EmotionPredictor.encode`: a `VideoEncoding`), or None.

    Raises:
        ValueError: `name` is not a name of `candidate`.
    """
    emb = predictor.class_embeddings(candidate)  # (C, D) normalised
    index = candidate.names.index(name)
    n = len(candidate.classes)
    cos = (emb[:n] @ emb[index]).tolist()  # (n,) cosines with the plain classes
    order = sorted(range(n), key=lambda i: -cos[i])
    nearest = [(candidate.names[i], float(cos[i])) for i in order]
    if encoding is None:
        return CompoundPreview(nearest, None, None, len(candidate.names))
    probs = predictor.score(encoding, candidate).probabilities
    ranked = sorted(probs, key=probs.__getitem__, reverse=True)
    return CompoundPreview(nearest, probs[name], ranked.index(name) + 1, len(candidate.names))
