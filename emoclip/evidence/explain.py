"""The evidence for one answer (`Evidence`), from plain values: the clip's cached frame
embeddings and pooler (key moments), the class set's text embeddings (matched words) and the
answer's probabilities (margin). Nothing is decoded or encoded here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emoclip.evidence.moments import LeaveOneOut, Pooler, clip_picks, leave_one_out, stretches
from emoclip.evidence.report import (
    NO_MOMENTS_ONE_FRAME,
    NO_MOMENTS_PHOTO,
    Evidence,
    Moment,
)
from emoclip.evidence.words import UNCERTAIN_MARGIN, class_words, margin
from emoclip.zeroshot import probabilities as zeroshot_probabilities

__all__ = ["ClipFrames", "explain", "explain_encoding", "key_moments"]

KEY_MOMENTS = 3  # moments reported as supporting the answer


@dataclass(frozen=True)
class ClipFrames:
    """The frames a clip's answer pooled, as cached by the analysis.

    Attributes:
        embeddings: (M, D) un-normalised frame embeddings.
        times: (M,) their times in seconds.
        picks: (T,) the rows the clip's answer pools (`moments.clip_picks`).
        duration: The clip's length in seconds.
        thumbnail_times: Times of the thumbnail crops kept with the analysis.
        pool: The model's batched pooler.
        cache: Where the leave-one-out embeddings are kept between calls (the encoding's
            ``evidence`` dict): re-scoring the same clip against another class set pools nothing.
    """

    embeddings: torch.Tensor
    times: np.ndarray
    picks: np.ndarray
    duration: float
    thumbnail_times: np.ndarray
    pool: Pooler
    cache: dict[str, Any] | None = None


def explain(
    probabilities: dict[str, float],
    class_set: Any,
    clip: torch.Tensor,
    class_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor | float,
    frames: ClipFrames | None,
) -> Evidence:
    """The evidence for an answer.

    Args:
        probabilities: The answer's probability per class name (score order).
        class_set: The `ClassSet` scored (its classes' descriptions, its compounds' parts).
        clip: (D,) the clip embedding.
        class_embeddings: (C, D) its class then compound embeddings.
        text_embeddings: (N, D) embeddings of ``class_set.texts`` (from the text cache).
        logit_scale: The model's log inverse temperature.
        frames: The pooled frames, or None for a photo (no time axis: no moments).
    """
    top, runner, gap = margin(probabilities)
    words = class_words(
        clip,
        [(c.name, c.descriptions) for c in class_set.classes],
        [(c.name, c.parts) for c in class_set.compounds],
        class_set.texts,
        text_embeddings,
        class_embeddings,
    )
    first = [w for w in words if w.name == top] + [w for w in words if w.name == runner]
    evidence = Evidence(
        top,
        runner,
        gap,
        gap < UNCERTAIN_MARGIN,
        UNCERTAIN_MARGIN,
        words=first + [w for w in words if w.name not in (top, runner)],
    )
    if frames is None:
        evidence.no_moments = NO_MOMENTS_PHOTO
        return evidence
    names = list(probabilities)
    loo = _pooled(frames)
    if not len(loo.frames):
        evidence.no_moments = NO_MOMENTS_ONE_FRAME
        return evidence
    probs = loo.probabilities(class_embeddings, logit_scale)  # (K, C)
    t, r = names.index(top), names.index(runner) if runner is not None else None
    times = np.asarray(frames.times, dtype=np.float64)[loo.frames]
    starts, ends = stretches(times, frames.duration)
    thumbs = np.asarray(frames.thumbnail_times, dtype=np.float64)
    evidence.moments = [
        Moment(
            int(f),
            float(times[k]),
            float(starts[k]),
            float(ends[k]),
            float(probabilities[top] - probs[k, t]),
            0.0 if r is None else float(probabilities[names[r]] - probs[k, r]),
            int(np.abs(thumbs - times[k]).argmin()) if len(thumbs) else -1,
        )
        for k, f in enumerate(loo.frames)
    ]
    evidence.key_moments, evidence.against = key_moments(evidence.moments)
    return evidence


def _pooled(frames: ClipFrames) -> LeaveOneOut:
    """The leave-one-out embeddings of `frames`, from its cache when they were pooled before."""
    key = "leave_one_out:" + ",".join(map(str, frames.picks))
    cached = frames.cache.get(key) if frames.cache is not None else None
    if isinstance(cached, LeaveOneOut):
        return cached
    loo = leave_one_out(frames.embeddings, frames.picks, frames.pool)
    if frames.cache is not None:
        frames.cache[key] = loo
    return loo


def key_moments(moments: list[Moment], k: int = KEY_MOMENTS) -> tuple[list[int], int | None]:
    """Up to `k` moments with the largest positive drop (best first), and the moment with the
    largest positive runner-up drop (None if no moment lowers the runner-up)."""
    order = sorted(range(len(moments)), key=lambda i: -moments[i].drop)
    support = [i for i in order if moments[i].drop > 0][:k]
    against = max(range(len(moments)), key=lambda i: moments[i].runner_up_drop, default=None)
    if against is not None and moments[against].runner_up_drop <= 0:
        against = None
    return support, against


def explain_encoding(
    encoding: Any,
    probabilities: dict[str, float],
    class_set: Any,
    class_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor | float,
    pool: Pooler,
    num_frames: int,
) -> Evidence:
    """`explain` for a `VideoEncoding` (`emoclip.inference`): its cached frame embeddings, times,
    duration and thumbnails (the leave-one-out embeddings are kept in its ``evidence`` dict, so
    a re-score pools nothing); a photo (``video["kind"] == "image"``) gets no moments, and with
    several faces each face's own evidence in ``faces`` (the tracks' order: largest first). `num_frames`
    is the model's T (``config.preprocess.num_frames``)."""
    frames = None
    if encoding.video.get("kind") != "image":
        m = len(encoding.frame_embeddings)
        frames = ClipFrames(
            encoding.frame_embeddings,
            np.asarray(encoding.frame_times),
            clip_picks(m, num_frames),
            float(encoding.video.get("duration") or 0.0),
            np.asarray([t for t, _ in encoding.thumbnails], dtype=np.float64),
            pool,
            getattr(encoding, "evidence", None),
        )
    evidence = explain(
        probabilities,
        class_set,
        encoding.clip_embedding,
        class_embeddings,
        text_embeddings,
        logit_scale,
        frames,
    )
    if frames is None and len(encoding.tracks) > 1:  # a photo's faces, each on its own
        names = list(probabilities)
        for track in encoding.tracks:
            emb = track[4]
            probs = zeroshot_probabilities(emb[None], class_embeddings, logit_scale)[0]
            evidence.faces.append(
                explain(
                    dict(zip(names, probs.tolist())),
                    class_set,
                    emb,
                    class_embeddings,
                    text_embeddings,
                    logit_scale,
                    None,
                )
            )
    return evidence
