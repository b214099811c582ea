"""Which frames of a clip to use, and the random training transforms of a clip's frames."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from emoclip.media import sample_indices

_ROTATION_DEGREES = 6.0


EVAL_SAMPLINGS = (
    "consecutive",
    "spread",
)  # data.eval_sampling; "consecutive" is the authors' eval.py


def temporal_indices(
    num_frames: int,
    length: int,
    *,
    stride: int = 1,
    rng: np.random.Generator | None = None,
    sampling: str | None = None,
) -> np.ndarray:
    """Which frames of a clip to use.

    Args:
        num_frames: Frames available (> 0), in order.
        length: T, frames wanted.
        stride: Keep only frames whose index % stride == 0 (the authors' TemporalDownSample).
        rng: The generator of the random start ("consecutive").
        sampling: "consecutive" (the authors' RandomSequence, in training and in their eval.py):
            T consecutive kept frames from a random start drawn from `rng`, wrapping once to the
            start, then reflect-padded (edge-repeated for one frame) if still short. "spread": T
            kept frames spread uniformly over the whole clip (`sample_indices`; frames of a clip
            shorter than T are repeated); no randomness. Default: "consecutive" when `rng` is
            given, else "spread".

    Returns:
        (T,) int64 indices into ``range(num_frames)``.

    Raises:
        ValueError: ``num_frames < 1``, an unknown `sampling`, or "consecutive" without `rng`.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    sampling = sampling or ("consecutive" if rng is not None else "spread")
    if sampling not in EVAL_SAMPLINGS:
        raise ValueError(f"sampling must be one of {EVAL_SAMPLINGS}, got {sampling!r}")
    kept = np.arange(0, num_frames, max(1, int(stride)), dtype=np.int64)
    if sampling == "spread":
        return kept[sample_indices(len(kept), length)]
    if rng is None:
        raise ValueError("sampling 'consecutive' needs rng (the random start)")
    start = int(rng.integers(len(kept)))
    seq = kept[start : start + length]
    if len(seq) < length:
        seq = np.concatenate([seq, kept[: length - len(seq)]])
    if len(seq) < length:
        seq = np.pad(seq, (0, length - len(seq)), mode="reflect" if len(seq) > 1 else "edge")
    return seq


def eval_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of clip `index`'s random start at evaluation: a function of (seed, index)
    only, so the authors' random-start sampling is repeatable across runs, workers and ranks."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 0xE7A1]))


def augment_clip(frames: np.ndarray, rng: np.random.Generator, mean: Sequence[float]) -> np.ndarray:
    """One random rotation and horizontal flip for a whole (T, S, S, 3) uint8 RGB clip."""
    angle = float(rng.uniform(-_ROTATION_DEGREES, _ROTATION_DEGREES))
    flip = rng.random() < 0.5
    height, width = frames.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle, 1.0)
    fill = tuple(int(round(255.0 * m)) for m in mean)  # ~0 once normalised
    out = np.stack(
        [
            cv2.warpAffine(
                frame,
                matrix,
                (width, height),
                flags=cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=fill,
            )
            for frame in frames
        ]
    )
    return np.ascontiguousarray(out[:, :, ::-1]) if flip else out


# `codec_augment`: what VP8 webm encoding does to synthetic frames, roughly (4:2:0 chroma, blocky
# quantisation); the probabilities and JPEG qualities were tuned on the tiny synthetic model.
_CODEC_I420_P, _CODEC_JPEG_P, _CODEC_JPEG_QUALITY = 0.8, 0.7, (40, 95)


def codec_augment(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Video-codec-like degradation of one (H, W, 3) uint8 RGB frame (even H and W).

    With probability 0.8 a YUV 4:2:0 round trip (chroma subsampling, as VP8/H.264), then with
    probability 0.7 JPEG compression at a quality drawn in [40, 95] (block quantisation).
    """
    if rng.random() < _CODEC_I420_P:
        frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), cv2.COLOR_YUV2RGB_I420)
    if rng.random() < _CODEC_JPEG_P:
        quality = int(rng.integers(_CODEC_JPEG_QUALITY[0], _CODEC_JPEG_QUALITY[1] + 1))
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
        if decoded is not None:
            frame = decoded
    return frame


def train_rng(seed: int, index: int) -> np.random.Generator:
    draw = int(torch.randint(0, 2**62, (1,)).item())  # per worker and epoch under a DataLoader
    return np.random.default_rng([int(seed) & (2**63 - 1), int(index), draw])
