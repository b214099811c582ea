"""A compiled image-tower candidate measured after the choice, while the chosen tower serves.

Compiling a tower (`emoclip.inference.compiled_tower`) takes minutes on a small CPU, far beyond
the seconds a first start may spend choosing. So `autotune.choose_tower` leaves a compiled
candidate whose package is not on disk ``pending``, and the predictor's `precision.TowerSelector`
runs `challenge` in a background thread: the package is compiled into the tower cache, checked
against the plain tower like every candidate, timed against the serving tower at the same layout,
and the kept choice is updated either way (the compiled candidate then has its own frames/s, or
its failure), so the next start loads the winner without measuring.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from emoclip.inference.autotune import (
    BY_NAME,
    Measurement,
    TowerChoice,
    layout_key,
)
from emoclip.inference.compiled_tower import Compiling, kernel_threads
from emoclip.inference.parallel import Layout
from emoclip.inference.tower_cache import ChoiceCache, CpuInfo, read_cpu_info
from emoclip.model.network import EmoCLIP

log = logging.getLogger("emoclip.inference.tower")


def challenge(
    model: EmoCLIP,
    choice: TowerChoice,
    candidate: str,
    *,
    precision: str,
    layout: Layout,
    cache_dir: Path,
    cpu: CpuInfo | None = None,
) -> TowerChoice | None:
    """Compile `candidate` (if its package is missing), check it and time it against `choice`.

    Args:
        model: The model `choice` was made for.
        choice: The serving choice (its `fn` is timed again beside the candidate).
        candidate: A compiled candidate's name (``aoti-bf16`` or ``aoti-fp32``).
        precision, layout, cache_dir, cpu: As `choose_tower` was called (they make the key).

    Returns:
        The new choice when `candidate` passes and is faster (kept on disk), else None (the kept
        choice records the candidate's frames/s or why it was not used; `choice` is updated).
    """
    cpu = cpu or read_cpu_info()
    cache = ChoiceCache(cache_dir)
    key = layout_key(model, precision, layout, cpu)
    compiling = Compiling(
        cache.path(key), layout.workers, kernel_threads(layout.workers), build=True
    )
    t0 = time.perf_counter()
    m = Measurement(model, layout, math.inf)
    serving = choice.fn if choice.fn is not None else model.encode_image
    seconds = m.timed(serving)
    m.best = (seconds, BY_NAME[choice.name], serving, choice.parity or 0.0, choice.reason)
    trial = TowerChoice(choice.name, choice.precision, choice.fn, choice.reason)
    trial.frames_per_s = dict(choice.frames_per_s) | {choice.name: round(layout.batch / seconds, 2)}
    trial.failures = {k: v for k, v in choice.failures.items() if k != candidate}
    m.run([BY_NAME[candidate]], trial, None, compiling)
    _, winner, fn, figure, text = m.best
    total = round(choice.seconds + time.perf_counter() - t0, 2)
    record = {
        "choice": winner.name,
        "precision": winner.precision,
        "frames_per_s": trial.frames_per_s,
        "failures": trial.failures,
        "seconds": total,
    }
    cache.save(key, record)
    choice.frames_per_s, choice.failures = trial.frames_per_s, trial.failures
    choice.pending = [p for p in choice.pending if p != candidate]
    if winner.name == choice.name:
        fps = trial.frames_per_s.get(candidate)
        log.warning(
            "image tower %s kept: %s %s",
            choice.name,
            candidate,
            f"measured {fps} vs {trial.frames_per_s[choice.name]} frames/s"
            if fps
            else f"not used: {trial.failures.get(candidate)}",
        )
        return None
    new = TowerChoice(
        winner.name,
        winner.precision,
        fn,
        f"compiled and measured after {choice.name} served, faster than it, {text}",
        parity=figure,
        frames_per_s=trial.frames_per_s,
        failures=trial.failures,
        source="measured",
        seconds=total,
        cache_file=str(cache.path(key)),
        cpu=cpu.model,
        isa=cpu.isa(),
    )
    log.warning("image tower %s now serves: %s", new.name, new.reason)
    return new
