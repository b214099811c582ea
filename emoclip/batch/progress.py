"""What a batch run did and where it is: `BatchSummary`, `BatchProgress` and the progress line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[["BatchProgress"], None]


@dataclass
class BatchProgress:
    """Where a run is: inputs done of total (this run), clips per second, seconds left."""

    done: int
    total: int
    errors: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def line(self) -> str:
        eta = "?" if self.eta is None else duration_text(self.eta)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        errors = f", {self.errors} errors" if self.errors else ""
        return (
            f"{self.done}/{self.total} inputs ({pct:.0f}%){errors}  {self.rate:.2f} clips/s  "
            f"ETA {eta}"
        )


@dataclass
class BatchSummary:
    """What a run did. ``skipped`` inputs were already in ``out`` with the same provenance
    (resume); ``total - skipped - done`` were left for a later run (`run_batch`'s ``limit``).
    ``out`` and ``parts`` are local paths or URIs as given; ``provenance`` is the run's
    `emoclip.provenance.Provenance` as a dict, ``config_key`` its digest."""

    out: str
    total: int
    skipped: int
    done: int
    errors: int
    seconds: float
    workers: int
    parts: list[str] = field(default_factory=list)
    config_key: str = ""
    provenance: dict = field(default_factory=dict)


def duration_text(seconds: float) -> str:
    """``M:SS`` or ``H:MM:SS``."""
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def terminal_progress(stream=None, every: float = 2.0) -> Progress:
    """A progress callback printing `BatchProgress.line` (in place on a terminal, else every
    `every` seconds and at the end)."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    last = [0.0]

    def show(p: BatchProgress) -> None:
        now = time.monotonic()
        final = p.done >= p.total
        if tty:
            stream.write("\r" + p.line().ljust(70) + ("\n" if final else ""))
        elif final or now - last[0] >= every:
            stream.write(p.line() + "\n")
            last[0] = now
        else:
            return
        stream.flush()

    return show


def describe(summary: BatchSummary) -> str:
    """One line about a finished run."""
    return (
        f"{summary.done} analysed ({summary.errors} with errors), {summary.skipped} already done, "
        f"{summary.total} inputs; {summary.workers} workers, {summary.seconds:.1f} s -> {summary.out}"
    )


__all__ = [
    "BatchProgress",
    "BatchSummary",
    "Progress",
    "describe",
    "duration_text",
    "terminal_progress",
]
