"""The model: pure ``nn.Module`` code, tensors in and tensors out (no disk, no network, no weights).

- `config`: `EmoCLIPConfig` (architecture + preprocessing, stored beside the weights) and its bounds.
- `backbone`: the only place that builds an open_clip architecture (no download).
- `temporal`: the temporal transformer (frame embeddings -> one video embedding).
- `network`: `EmoCLIP`: ``encode_image / encode_frames / encode_video / encode_text``.
- `tokenizer`: CLIP's BPE tokenizer.
- `preprocess`: square RGB crops -> CLIP-normalised tensors.

The names below are exported lazily: ``import emoclip.model.config`` loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emoclip._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {"EmoCLIP": "network", "EmoCLIPConfig": "config", "tokenize": "tokenizer"},
)

if TYPE_CHECKING:  # for type checkers and IDEs (`X as X` marks an explicit re-export)
    from emoclip.model.config import EmoCLIPConfig as EmoCLIPConfig
    from emoclip.model.network import EmoCLIP as EmoCLIP
    from emoclip.model.tokenizer import tokenize as tokenize
