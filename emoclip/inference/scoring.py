"""Scoring a video's encoding against class embeddings: a `Prediction` (no video work, cheap).

The clip, every timeline window and every face track are scored with the same zero-shot formula
(`zeroshot.probabilities`), as a few small matrix products on `live_threads` threads.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from emoclip.inference.encoding import VideoEncoding
from emoclip.inference.parallel import threads_for
from emoclip.results import FaceSummary, Prediction, Timeline, TrackPrediction
from emoclip.zeroshot import probabilities

__all__ = ["as_embeddings", "embedding_probabilities", "score_encoding"]


def score_encoding(
    encoding: VideoEncoding,
    names: list[str],
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    model_name: str,
    warnings: list[str],
    text_seconds: float,
    live_threads: int | None,
) -> Prediction:
    """The `Prediction` of one encoded video.

    Args:
        encoding: The video's encoding (clip, window and track embeddings, face bookkeeping).
        names: The C class names, in the order of `text`'s rows.
        text: (C, D) class embeddings.
        logit_scale: The model's log inverse temperature (a scalar tensor on the CPU).
        model_name: Reported as ``Prediction.model``.
        warnings: The prediction's warnings (the encoding's and the class set's).
        text_seconds: Time spent embedding the class texts (reported as ``timings["text"]``).
        live_threads: Intra-op threads for the scoring (`parallel.threads_for`).

    Returns:
        Clip probabilities, a (W, C) timeline, per-track probabilities; timings combine the
        encoding's stages with ``text`` and ``score``.
    """
    t1 = time.perf_counter()
    tracks = []
    with threads_for(live_threads, 0, "score"):  # a few small matrix products
        clip = probabilities(encoding.clip_embedding[None], text, logit_scale)[0]
        windows = (
            probabilities(encoding.window_embeddings, text, logit_scale)
            if len(encoding.window_starts)
            else torch.zeros(0, len(text))
        )
        boxes = getattr(encoding, "boxes", None) or {}
        for track_id, n, start, end, emb, primary in encoding.tracks:
            probs = probabilities(emb[None], text, logit_scale)[0]
            tracks.append(
                TrackPrediction(
                    track_id,
                    n,
                    start,
                    end,
                    dict(zip(names, probs.tolist())),
                    primary,
                    boxes.get(track_id),
                )
            )
    t2 = time.perf_counter()
    timings = dict(encoding.timings) | {"text": text_seconds, "score": t2 - t1}
    faces = FaceSummary(
        sampled_frames=len(encoding.times),
        frames_with_face=int(encoding.has_face.sum()),
        frames_without_face=int((~encoding.has_face).sum()),
        no_face_times=[float(t) for t in encoding.times[~encoding.has_face]],
        tracks=len(encoding.tracks),
        fallback=encoding.fallback,
        detection=encoding.detection,
    )
    return Prediction(
        model=model_name,
        classes=names,
        probabilities=dict(zip(names, clip.tolist())),
        timeline=Timeline(encoding.window_starts, encoding.window_ends, windows.numpy()),
        tracks=tracks,
        embedding=encoding.clip_embedding.numpy().copy(),
        faces=faces,
        timings=timings,
        video=dict(encoding.video),
        warnings=warnings,
    )


def as_embeddings(embeddings: np.ndarray | torch.Tensor, embed_dim: int) -> torch.Tensor:
    """Bare video embeddings as a float32 tensor, (N, D) or (D,); ValueError unless D == `embed_dim`."""
    video = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    if video.ndim not in (1, 2) or video.shape[-1] != embed_dim:
        raise ValueError(
            f"embeddings must be (N, {embed_dim}) or ({embed_dim},), got {tuple(video.shape)}"
        )
    return video


def embedding_probabilities(
    video: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, *, live_threads: int | None
) -> np.ndarray:
    """Probabilities of (N, D) or (D,) video embeddings (`as_embeddings`) against (C, D) class
    embeddings: (N, C) float32, rows summing to 1 ((C,) for a (D,) input)."""
    single = video.ndim == 1
    with threads_for(live_threads, 0, "score"):
        probs = probabilities(video[None] if single else video, text, logit_scale).numpy()
    return probs[0] if single else probs
