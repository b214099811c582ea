"""Timing a call (best of N, with the work it did), log lines, and measurements run in a fresh
process (``python -m benchmarks.run --pN-child ...``, the checkout first on ``PYTHONPATH``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .work import WORK

REPO = Path(__file__).resolve().parent.parent  # the checkout: emoclip, emoclip_app, benchmarks


def log(msg: str) -> None:
    """One line of the run's output, flushed at once (a long figure shows its progress)."""
    print(msg, flush=True)


def best_of(
    fn: Callable[[], Any], repeats: int, warmup: int = 1, work: list[dict[str, int]] | None = None
) -> tuple[float, list[float]]:
    """(best seconds, all seconds) of `repeats` timed calls after `warmup` untimed ones; with `work`,
    the work `WORK` counted during each timed call is appended to it."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        before = WORK.snapshot()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if work is not None:
            work.append(WORK.since(before))
    return min(times), times


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with the checkout on ``PYTHONPATH`` (a child imports the same
    `emoclip` and `benchmarks` as this process), plus `extra` variables."""
    return dict(os.environ) | {"PYTHONPATH": str(REPO)} | extra


def run_child(flags: list[str], what: str, **env: str) -> dict[str, Any]:
    """Runs ``python -m benchmarks.run <flags>`` in a fresh process (from the checkout) and returns
    the JSON object it printed last; a failed child raises RuntimeError with its stderr's tail."""
    cmd = [sys.executable, "-m", "benchmarks.run", *flags]
    out = subprocess.run(cmd, capture_output=True, text=True, env=child_env(**env), cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
