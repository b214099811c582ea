"""OpenAI CLIP byte-pair tokenizer (through open_clip's copy of the BPE vocabulary).

`tokenize` matches ``clip.tokenize(texts, context_length=77, truncate=True)`` from the authors'
code: ``<start>`` + BPE ids + ``<end>``, zero-padded; an over-long text is cut and its last
position forced to ``<end>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CONTEXT_LENGTH = 77


@lru_cache(maxsize=1)
def _bpe():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=CONTEXT_LENGTH)


def tokenize(texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """Tokenize texts with CLIP's BPE, truncating over-long ones.

    Args:
        texts: One text or a sequence of texts.
        context_length: Number of token positions (77 for every CLIP text tower).

    Returns:
        Token ids, int64 tensor of shape (N, context_length).
    """
    if isinstance(texts, str):
        texts = [texts]
    return _bpe()(list(texts), context_length=context_length)


def count_tokens(text: str) -> int:
    """Number of positions `text` takes in the text tower, ``<start>`` and ``<end>`` included."""
    return len(_bpe().encode(text)) + 2


def is_truncated(text: str, context_length: int = CONTEXT_LENGTH) -> bool:
    """Whether `tokenize` has to cut `text` to fit `context_length` positions."""
    return count_tokens(text) > context_length
