"""What the trainer draws its training items from: per-item seeding, the "late" frame pick, a
resumable distributed sampler and the hold-out split."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


class EpochSeededDataset(Dataset):
    """Seeds torch's generator with ``(seed, epoch, index)`` around each item.

    The datasets draw their augmentation from torch's global generator; seeding per item makes
    every item a function of (seed, epoch, index) alone, in any worker and after a resume.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        state = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(
            1, np.uint64
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(state[0]) & (2**63 - 1))
            return self.dataset[index]


class LateFrameDataset(Dataset):
    """Keeps one random frame from the second half of each clip (``t >= 0.5``, where a synthetic
    expression has formed): the "late" pick of the frame-level warm-up. Draws from torch's
    generator, which `EpochSeededDataset` seeds per item."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        item = dict(self.dataset[index])
        t = item["frames"].shape[0]
        k = int(torch.randint(t // 2, t, (1,)))  # T=3: t = 0.5 or 1; T=8: frames 4..7 of 0..7
        item["frames"] = item["frames"][k : k + 1]
        return item


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (shuffled by seed + epoch) that can skip the samples already seen."""

    def __init__(
        self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch's order and the number of this rank's samples to skip."""
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


def split_holdout(dataset: Dataset, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, validation) index lists carving `fraction` off `dataset`."""
    n = len(dataset)  # type: ignore[arg-type]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = max(1, int(round(n * fraction)))
    return sorted(order[k:]), sorted(order[:k])
