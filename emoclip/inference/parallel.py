"""How many CPU threads each piece of inference work runs on.

Big batches of frames (or of sequences to pool) are split into row slices encoded at once by a
shared pool of worker threads, one intra-op thread each (data parallel, no barrier between cores,
so a busy core slows only its own slice). Small work (a webcam frame, a few pooled windows, a
handful of new class descriptions) runs on a few intra-op threads of the calling thread only:
small GEMMs gain little from more threads and wait for each one to be scheduled on a busy CPU.
OpenMP's thread count is per calling thread, so every change here is local and restored.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from emoclip.inference.small_work import SMALL_WORK

__all__ = [
    "MIN_POOL_PART",
    "Layout",
    "POOL_CHUNK",
    "SMALL_BATCH",
    "data_parallel",
    "encode_pool",
    "pool_in_chunks",
    "single_threaded",
    "split_encode",
    "threads_for",
]

POOL_CHUNK = 16  # sequences gathered and pooled per step (bounded memory on long timelines)
MIN_POOL_PART = 3  # pooling runs data parallel when every worker gets at least this many sequences
SMALL_BATCH = 4  # batches this small (live webcam frames) run with `live_threads` intra-op threads

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def encode_pool() -> ThreadPoolExecutor:
    """Worker threads for data-parallel encoding (shared by all predictors; one intra-op thread each)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="emoclip-encode"
            )
        return _POOL


def data_parallel(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, parts: int
) -> torch.Tensor:
    """`fn(x)` as `parts` single-threaded calls on row slices of `x`, concatenated; the calling
    thread computes the first slice, the shared worker pool the others."""
    chunks = x.tensor_split(parts)
    pool = encode_pool()
    futures = [pool.submit(single_threaded, fn, c) for c in chunks[1:]]
    try:
        first = single_threaded(fn, chunks[0])
    finally:
        rest = [f.result() for f in futures]
    return torch.cat([first, *rest])


def single_threaded(tower: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`tower(x)` on one intra-op thread, in inference mode (e.g. (N, 3, S, S) frames -> (N, D));
    only the calling thread's setting changes, and it is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # OpenMP's thread count is per calling thread: others are unaffected
    try:
        with torch.inference_mode():
            return tower(x)
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def threads_for(
    live_threads: int | None, batch: int, kind: str = "small", items: int = 1
) -> Iterator[None]:
    """`live_threads` intra-op threads for a batch of at most `SMALL_BATCH` (0: any small work), in
    the calling thread only; a bigger batch, or ``live_threads == 0``, keeps torch's setting.

    ``live_threads=None`` ("auto") runs on 1 or torch's thread count, whichever has run this
    `kind` of work faster per item lately (`small_work.SMALL_WORK`, which this call informs with
    its time for `items` items).
    """
    most = torch.get_num_threads()
    if live_threads == 0 or batch > SMALL_BATCH:
        yield
        return
    auto = live_threads is None
    n = SMALL_WORK.pick(kind, most) if live_threads is None else live_threads
    previous = most
    if n < most:
        torch.set_num_threads(n)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if auto:
            SMALL_WORK.record(kind, most, n, time.perf_counter() - t0, items)
        if n < most:
            torch.set_num_threads(previous)


def split_encode(
    tower: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    workers: int | None,
    encode_workers: int,
    live_threads: int | None,
) -> torch.Tensor:
    """(N, 3, S, S) normalised frames -> (N, D) float32 CPU embeddings through `tower`.

    ``workers == 1`` runs on the calling thread alone (one intra-op thread, the other cores are
    left to other work); otherwise the batch is split over at most ``min(workers, encode_workers)``
    data-parallel workers while each gets more than `SMALL_BATCH` frames, and a batch too small to
    split runs on `live_threads` threads (`threads_for`). Off the CPU the batch runs whole.
    """
    if workers == 1 and x.device.type == "cpu":
        return single_threaded(tower, x).float()
    parts = min(workers or encode_workers, encode_workers, len(x) // (SMALL_BATCH + 1))
    if parts <= 1 or x.device.type != "cpu":
        with threads_for(live_threads, len(x), "frames", len(x)):
            return tower(x).float().cpu()
    return data_parallel(tower, x, parts).float().cpu()


def pool_in_chunks(
    pool: Callable[[torch.Tensor], torch.Tensor],
    jobs: list[tuple[torch.Tensor, np.ndarray]],
    encode_workers: int,
) -> torch.Tensor:
    """`pool` of many sequences given as ``(frames (M, D), picks (B, T))`` pairs: (sum B, D).

    Sequences are gathered `POOL_CHUNK` at a time (a long video's timeline is never materialised
    whole) and each chunk of (B', T, D) is pooled data parallel over up to `encode_workers`.
    """
    rows = [(frames, pick) for frames, picks in jobs for pick in np.asarray(picks, dtype=np.int64)]
    out = []
    for start in range(0, len(rows), POOL_CHUNK):
        chunk = torch.stack(
            [frames[torch.from_numpy(pick)] for frames, pick in rows[start : start + POOL_CHUNK]]
        )
        parts = min(encode_workers, len(chunk) // MIN_POOL_PART)
        out.append(data_parallel(pool, chunk, parts) if parts > 1 else pool(chunk))
    return torch.cat(out)


@dataclass
class Layout:
    """A predictor's batch and thread layout: frames per batch, data-parallel encode workers and
    small-batch threads (what image-tower candidates are timed at)."""

    batch: int
    workers: int
    threads: int | None

    def run(self, tower: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """`split_encode` of (N, 3, S, S) frames `x` through `tower` in this layout: (N, D)."""
        with torch.inference_mode():
            return split_encode(
                tower, x, workers=None, encode_workers=self.workers, live_threads=self.threads
            )
