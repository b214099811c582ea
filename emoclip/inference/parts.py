"""The parts an analysis runs with, built by `EmotionPredictor` and handed to the pipeline and the
photo path (which import nothing of the predictor):

- `FrameEncoder`: square crops -> frame embeddings, with the image tower in its chosen precision
  (`precision.TowerChoice`) split over data-parallel workers (`parallel.split_encode`).
- `Pooler`: frame embeddings -> L2-normalised video embeddings (the folded temporal model on CPU).
- `AnalysisParts`: the two above, the shared face detector, the class-description embeddings
  (`zeroshot.TextEmbeddingCache`), the model's preprocessing and the `AnalysisSettings` one
  analysis follows (`AnalysisParts.build` makes them all from a model).

Each part can be built alone from a model (benchmarks and tests do); `EmotionPredictor.parts` is
the set a predictor runs with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoclip.inference import tower_cache
from emoclip.inference.detector import SharedDetector
from emoclip.inference.parallel import pool_in_chunks, split_encode, threads_for
from emoclip.inference.precision import Tower, TowerSelector, fast_temporal
from emoclip.model.config import PreprocessConfig
from emoclip.model.network import EmoCLIP
from emoclip.model.preprocess import to_tensor
from emoclip.settings import AnalysisSettings
from emoclip.zeroshot import TextEmbeddingCache

__all__ = ["AnalysisParts", "FrameEncoder", "Pooler"]


def _workers(settings: AnalysisSettings) -> int:
    """Data-parallel workers: the setting, or torch's intra-op thread count when it is 0."""
    return max(1, settings.encode_workers or torch.get_num_threads())


class FrameEncoder:
    """The image tower as a part: (N, S, S, 3) uint8 crops -> (N, D) frame embeddings.

    Args:
        model: The model whose image tower runs.
        settings: Uses ``precision``, ``release_weights``, ``compile_tower`` and ``tower_cache``
            (the tower, chosen on first use and shared per model), ``encode_workers`` (data-parallel workers, one intra-op thread
            each; 0: torch's thread count) and ``live_threads`` (threads for small batches).
    """

    def __init__(self, model: EmoCLIP, settings: AnalysisSettings | None = None) -> None:
        settings = settings or AnalysisSettings()
        self.model = model
        self.config: PreprocessConfig = model.config.preprocess
        self.workers = _workers(settings)
        self.live_threads = settings.live_threads
        cache = (settings.tower_cache or "").strip()
        self._towers = TowerSelector(  # the one place the image tower is chosen (`autotune`)
            model,
            settings.precision,
            batch=settings.batch_size,
            workers=self.workers,
            threads=settings.live_threads,
            cache_dir=None if cache == "off" else Path(cache or tower_cache.default_cache_dir()),
            release=settings.release_weights,
            compile=settings.compile_tower,
        )

    def tower(self) -> Tower:
        """The image tower in use (chosen on first call, shared per model; re-chosen when the
        model's image-tower weights change). RuntimeError when an explicit bf16 was refused."""
        return self._towers.tower()

    @property
    def precision(self) -> str:
        """``"fp32"`` or ``"bf16"`` (decided on first use; RuntimeError when bf16 was refused)."""
        return self.tower().precision

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Wait for a compiled tower being built in the background (``compile_tower``); True
        when none is running any more."""
        return self._towers.wait_compiled(timeout)

    def tower_report(self) -> str:
        """How the image tower was chosen on this machine, in a few lines (`TowerChoice.report`)."""
        return self._towers.report()

    def precision_info(self) -> dict[str, Any]:
        """How the precision was chosen: requested, chosen, reason, cosine to fp32, implementation."""
        return self._towers.info()

    @torch.inference_mode()
    def encode(
        self, crops: np.ndarray | Sequence[np.ndarray], *, workers: int | None = None
    ) -> torch.Tensor:
        """Frame embeddings of square crops.

        Args:
            crops: (N, S, S, 3) uint8 RGB crops, S = the model's image size.
            workers: At most this many data-parallel workers for this call (default
                `workers`); 1 encodes on the calling thread alone.

        Returns:
            (N, D) float32 un-normalised embeddings on the CPU.
        """
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be None or at least 1, got {workers}")
        x = to_tensor(crops, self.config).to(self.model.logit_scale.device)
        return self.encode_tensor(x, workers=workers)

    def encode_tensor(self, x: torch.Tensor, *, workers: int | None = None) -> torch.Tensor:
        """`encode` after its preprocessing: (N, 3, S, S) CLIP-normalised frames on the model's
        device -> (N, D) float32 embeddings on the CPU, in the chosen precision."""
        return split_encode(
            self.tower(),
            x,
            workers=workers,
            encode_workers=self.workers,
            live_threads=self.live_threads,
        )


class Pooler:
    """The temporal model as a part: windows of frame embeddings -> video embeddings.

    Args:
        model: The model whose temporal model (or mean pooling) runs.
        settings: Uses ``encode_workers`` (sequences pooled data parallel), ``live_threads`` and
            ``release_weights`` (the folded temporal model gives back the weights it folds).
    """

    def __init__(self, model: EmoCLIP, settings: AnalysisSettings | None = None) -> None:
        settings = settings or AnalysisSettings()
        self.model = model
        self.workers = _workers(settings)
        self.live_threads = settings.live_threads
        self.release = settings.release_weights

    @torch.inference_mode()
    def pool(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, T, D) or (T, D) un-normalised frame embeddings -> (B, D) or (D,) L2-normalised
        video embeddings."""
        single = frame_embeddings.ndim == 2
        x = frame_embeddings[None] if single else frame_embeddings
        fast = fast_temporal(self.model, self.release)
        with threads_for(self.live_threads, 0 if fast is not None else len(x), "pool", len(x)):
            if fast is not None:
                out = torch.nn.functional.normalize(fast(x.float()), dim=-1)
            else:
                device = self.model.logit_scale.device
                out = self.model.aggregate(x.to(device), normalize=True).float().cpu()
        return out[0] if single else out

    def pool_batch(self, jobs: list[tuple[torch.Tensor, np.ndarray]]) -> torch.Tensor:
        """`pool` of many sequences given as ``(frames (M, D), picks (B, T))`` pairs: (sum B, D).

        Sequences are gathered `parallel.POOL_CHUNK` at a time (a long video's timeline is never
        materialised whole) and each chunk is pooled data parallel over the workers.
        """
        return pool_in_chunks(self.pool, jobs, self.workers)


@dataclass(frozen=True)
class AnalysisParts:
    """What one analysis runs with (the pipeline and the photo path take it, never a predictor).

    Attributes:
        config: The model's preprocessing (image size, sampling rate, window, face margin).
        settings: Sampling, limits, face thresholds, fallback, batch size, prefetch.
        encoder: Crops -> frame embeddings (`encoder.precision`, `encoder.precision_info()` and
            `encoder.tower_report()` say which image tower runs and why).
        pooler: Frame embeddings -> video embeddings.
        faces: The face detector shared between the predictor's requests.
        text_cache: Class-description embeddings by text (the text tower runs only for unseen
            texts; `text_cache.encoded` counts those), shareable between predictors of one model.
    """

    config: PreprocessConfig
    settings: AnalysisSettings
    encoder: FrameEncoder
    pooler: Pooler
    faces: SharedDetector
    text_cache: TextEmbeddingCache

    @classmethod
    def build(
        cls,
        model: EmoCLIP,
        settings: AnalysisSettings | None = None,
        *,
        text_cache: TextEmbeddingCache | None = None,
    ) -> AnalysisParts:
        """Every part for `model` under `settings` (default: its defaults); `text_cache`: share
        another set's class-description embeddings (same model), else a new cache."""
        settings = settings or AnalysisSettings()
        if text_cache is not None and text_cache.model is not model:
            raise ValueError("text_cache belongs to another model")
        return cls(
            model.config.preprocess,
            settings,
            FrameEncoder(model, settings),
            Pooler(model, settings),
            SharedDetector(),
            TextEmbeddingCache(model) if text_cache is None else text_cache,  # empty is falsy
        )
