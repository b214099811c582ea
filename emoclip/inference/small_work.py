"""How many intra-op threads small work runs on, chosen by measuring it as it runs.

Small work (one webcam frame through the image tower, a few pooled windows, one edited class
description through the text tower, the scoring matmuls) gains from a second core on an idle
machine and loses badly on a busy one, where each parallel region waits for its second thread to
be scheduled. Measured on a 2-core AMD EPYC (Zen 4), idle: one ViT-B/32 frame 66.6 ms on one
thread vs 38.6 ms on two, one edited description re-scored in 57 ms vs 40 ms; with eight other
jobs on the two cores, one description took 20-30 ms on one thread vs 660-1060 ms on two (second
session). No fixed count is right on every machine and at every load, so `SmallWorkThreads`
times both as they run and keeps the faster:

- per kind of work (``"frames"``, ``"pool"``, ``"text"``, ``"score"``), the seconds per item of each
  thread count as an exponentially weighted mean (`ALPHA`) of the calls it serves; a count tried
  again after a gap starts from that call's time (its old mean describes an older load);
- each count is tried `TRIALS` times first (alternating), then the faster serves; the other is
  tried again after `EXPLORE_FIRST` calls, then after twice as many each time it loses again (at
  most `EXPLORE_MAX`), and the gap starts over when it wins, so a change of load is noticed
  without paying for the slower count often.

The choice is the process's (thread contention is the machine's, not a predictor's), guarded by
a lock; `SMALL_WORK` is the instance `parallel.threads_for` uses when ``live_threads`` is None
(``"auto"``, the default).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["ALPHA", "EXPLORE_FIRST", "EXPLORE_MAX", "SMALL_WORK", "TRIALS", "SmallWorkThreads"]

ALPHA = 0.3  # weight of the newest call in each count's mean seconds per item
TRIALS = 2  # calls each count gets before the faster one serves (after one untimed warm-up)
EXPLORE_FIRST = 16  # calls before the slower count is tried again
EXPLORE_MAX = 512  # the longest gap between tries of the slower count (doubles on each loss)


@dataclass
class _Kind:
    mean: dict[int, float] = field(default_factory=dict)  # threads -> seconds per item
    calls: dict[int, int] = field(default_factory=dict)  # threads -> calls recorded
    gap: int = EXPLORE_FIRST
    since: int = 0  # calls since the slower count was last tried
    trying: int | None = None  # the count being tried again, until its call is recorded


class SmallWorkThreads:
    """Chooses 1 or `most` intra-op threads per kind of small work, by timing both as it runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, int], _Kind] = {}

    def pick(self, kind: str, most: int) -> int:
        """The thread count the next call of `kind` runs on (1 or `most`)."""
        if most <= 1:
            return 1
        options = (1, most)
        with self._lock:
            state = self._kinds.setdefault((kind, most), _Kind())
            fewest = min(options, key=lambda n: state.calls.get(n, 0))
            if state.calls.get(fewest, 0) < TRIALS + 1:  # an untimed warm-up, then TRIALS
                return fewest  # timed calls of each count, alternating
            best = min(options, key=lambda n: state.mean[n])
            state.since += 1
            if state.since >= state.gap:
                state.since = 0
                state.trying = options[1] if best == options[0] else options[0]
                return state.trying
            return best

    def record(self, kind: str, most: int, threads: int, seconds: float, items: int = 1) -> None:
        """A call of `kind` on `threads` threads took `seconds` for `items` items (frames, texts)."""
        per_item = seconds / max(1, items)
        with self._lock:
            state = self._kinds.setdefault((kind, most), _Kind())
            done = state.calls.get(threads, 0)
            state.calls[threads] = done + 1
            if done == 0:
                return  # the first call of a count warms caches and allocators: not timed
            old = state.mean.get(threads)
            if old is None or state.trying == threads:  # a count tried again after a gap
                state.mean[threads] = per_item
            else:
                state.mean[threads] = ALPHA * per_item + (1 - ALPHA) * old
            if state.trying == threads:
                state.trying = None
                others = [m for n, m in state.mean.items() if n != threads]
                won = bool(others) and state.mean[threads] < min(others)
                state.gap = EXPLORE_FIRST if won else min(EXPLORE_MAX, state.gap * 2)

    def choices(self) -> dict[str, dict[int, float]]:
        """Each kind's mean seconds per item by thread count (for reports and tests)."""
        with self._lock:
            return {f"{kind}@{most}": dict(s.mean) for (kind, most), s in self._kinds.items()}


SMALL_WORK = SmallWorkThreads()
