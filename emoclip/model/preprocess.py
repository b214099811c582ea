"""Square RGB crops -> CLIP-normalised tensors (the model's input convention)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emoclip.model.config import PreprocessConfig


def to_tensor(images: np.ndarray | Sequence[np.ndarray], config: PreprocessConfig) -> torch.Tensor:
    """Normalise square crops for the image tower.

    Args:
        images: (N, S, S, 3) uint8 RGB crops with S == ``config.image_size`` (or a list of them).
        config: Supplies the normalisation mean and std.

    Returns:
        (N, 3, S, S) float32 tensor, ``(x / 255 - mean) / std``.
    """
    batch = np.ascontiguousarray(
        np.stack(list(images)) if not isinstance(images, np.ndarray) else images
    )
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected (N, S, S, 3) RGB crops, got shape {batch.shape}")
    size = config.image_size
    if batch.shape[1:3] != (size, size):
        raise ValueError(f"crops must be {size}x{size}, got {batch.shape[1]}x{batch.shape[2]}")
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)
