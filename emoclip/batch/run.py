"""`run_batch`: analyse a collection of inputs with Ray Data and stream the results to Parquet.

The pipeline is Ray Data's batch-inference pattern: a dataset of input rows (`inputs`), then
``map_batches`` with a fixed pool of `BatchWorker` actors that each hold the model, consumed by
the driver with ``iter_batches``; every finished block is written at once as its own Parquet part
(to a temporary name, then renamed), so a killed run leaves only complete parts. Resuming reads the
``(input_key, config_key)`` pairs already in ``out/results`` and skips them.

Retries: Ray restarts a dead actor and re-runs its batch (Ray Data's actor defaults,
``max_restarts=-1, max_task_retries=-1``); only a finished batch reaches the driver, so a retried
input is written once. An `AttemptCounter` actor bounds the retries of an input that kills its
worker every time (`max_attempts`): it then gets an error row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emoclip.batch.cluster import (
    check_address,
    check_not_client,
    import_ray,
    pool_size,
    start_ray,
    stop_ray,
)
from emoclip.batch.inputs import expand_inputs
from emoclip.batch.schema import RESULTS_DIR, TIMELINE_DIR, timeline_schema
from emoclip.batch.worker import BatchWorker
from emoclip.classes import ClassSet
from emoclip.settings import AnalysisSettings

Progress = Callable[["BatchProgress"], None]
MAX_BLOCKS = 20_000  # more inputs than this share blocks (Ray's per-block bookkeeping stays small)


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
        eta = "?" if self.eta is None else _duration(self.eta)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        errors = f", {self.errors} errors" if self.errors else ""
        return (
            f"{self.done}/{self.total} inputs ({pct:.0f}%){errors}  {self.rate:.2f} clips/s  "
            f"ETA {eta}"
        )


@dataclass
class BatchSummary:
    """What a run did. ``skipped`` inputs were already in ``out`` (resume); ``total - skipped -
    done`` were left for a later run (`run_batch`'s ``limit``)."""

    out: Path
    total: int
    skipped: int
    done: int
    errors: int
    seconds: float
    workers: int
    parts: list[Path] = field(default_factory=list)


class AttemptCounter:
    """Counts the unfinished starts of each input across actor restarts (a tiny Ray actor)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def start(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def finish(self, key: str) -> None:
        self.counts.pop(key, None)


def config_key(
    model: str,
    classes: ClassSet | None,
    face_fallback: str = "center",
    frame_fps: float | None = None,
) -> str:
    """The resume key of a configuration: model (a file by path, size and mtime), classes, options."""
    spec = str(model)
    path = Path(spec)
    if path.is_file():
        st = path.stat()
        spec = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    text = f"{spec}\0{classes!r}\0{face_fallback}\0{frame_fps}"
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


def result_parts(out: str | os.PathLike, table: str = RESULTS_DIR) -> list[Path]:
    """The complete Parquet parts of a results folder (sorted by name)."""
    folder = Path(out) / table
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def read_results(
    out: str | os.PathLike, table: str = RESULTS_DIR, columns: Sequence[str] | None = None
) -> pa.Table:
    """All parts of a results folder's `table` ("results" or "timeline") as one Arrow table."""
    parts = result_parts(out, table)
    if not parts:
        return timeline_schema().empty_table() if table == TIMELINE_DIR else pa.table({})
    tables = [pq.read_table(p, columns=list(columns) if columns else None) for p in parts]
    return pa.concat_tables(tables, promote_options="default")


def done_keys(out: str | Path, *, with_errors: bool = True) -> set[tuple[str, str]]:
    """``(input_key, config_key)`` of the inputs already in ``out`` (rows with an error included
    unless `with_errors` is False)."""
    table = read_results(out, columns=["input_key", "config_key", "error"])
    if not table.num_rows:
        return set()
    keys = zip(
        table.column("input_key").to_pylist(),
        table.column("config_key").to_pylist(),
        table.column("error").to_pylist(),
    )
    return {(k, c) for k, c, e in keys if with_errors or e is None}


def _clean(out: Path) -> None:
    """Remove what a killed run can leave: temporary files and timeline parts whose results part
    was never renamed into place (those inputs are not done and will be analysed again)."""
    for folder in (out / RESULTS_DIR, out / TIMELINE_DIR):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
    results = {p.name for p in result_parts(out)}
    for part in result_parts(out, TIMELINE_DIR):
        if part.name not in results:
            part.unlink(missing_ok=True)


def _write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: readers of the folder skip it
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _timeline(table: pa.Table) -> pa.Table:
    """The windows of a worker's output as timeline rows."""
    rows = []
    for path, key, config, windows, classes in zip(
        table.column("path").to_pylist(),
        table.column("input_key").to_pylist(),
        table.column("config_key").to_pylist(),
        table.column("_windows").to_pylist(),
        table.column("classes").to_pylist(),
    ):
        for i, w in enumerate(windows or ()):
            probs = w["probabilities"]
            top = classes[max(range(len(probs)), key=probs.__getitem__)] if probs else None
            rows.append(
                {
                    "path": path,
                    "input_key": key,
                    "config_key": config,
                    "window": i,
                    "start": w["start"],
                    "end": w["end"],
                    "top": top,
                    "probabilities": probs,
                }
            )
    return pa.Table.from_pylist(rows, schema=timeline_schema())


def _duration(seconds: float) -> str:
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


def run_batch(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model: str | None = None,
    classes: ClassSet | None = None,
    weights_dirs: Sequence[str] = (),
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    batch_size: int = 1,
    device: str | None = None,
    face_fallback: str = "center",
    frame_fps: float | None = None,
    settings: AnalysisSettings | None = None,
    retry_errors: bool = False,
    max_attempts: int = 3,
    progress: Progress | None = None,
    worker_class: type[BatchWorker] = BatchWorker,
    num_cpus: int | None = None,
    limit: int | None = None,
) -> BatchSummary:
    """Analyse every input not yet in `out`, streaming results to ``out/results`` and ``out/timeline``.

    Args:
        inputs: Files, folders and manifests (see `inputs.expand_inputs`).
        out: Results folder (created); re-running with it resumes.
        model: Registry name or ``.safetensors`` path (default: the best available, as `predict`).
        classes: Class set (default: the model's own).
        weights_dirs: Extra folders with NAME.safetensors (on every node).
        address: Ray cluster to join from one of its nodes: ``"auto"`` or ``"HOST:PORT"``; None
            uses ``RAY_ADDRESS`` when set, else starts Ray on this machine and stops it
            afterwards. A Ray already initialised in this process is used as it is (and left
            running). Ray Client (``ray://``) is refused at once with a `cluster.RayClientError`
            (a ValueError): Ray Data cannot run over it.
        workers: Actors in the pool (default: the cluster's CPUs // `cpus_per_worker`, at most
            one per pending input).
        cpus_per_worker: CPUs reserved per actor (also its torch threads).
        gpus_per_worker: GPUs per actor (the model then runs on ``cuda``).
        batch_size: Inputs per actor call (a crashed call re-runs this many inputs).
        device: torch device (default ``cuda`` with GPUs, else ``cpu``).
        face_fallback: ``"center"`` or ``"skip"``.
        frame_fps: Frame rate of frame folders (default: ``settings.frame_folder_fps``, 25).
        settings: The analysis settings of every worker (default: `AnalysisSettings.from_env`,
            the driver's ``EMOCLIP_*`` variables); `face_fallback` and `threads` apply on top.
        retry_errors: Analyse inputs again whose earlier row has an error.
        max_attempts: Starts of an input that killed its worker before it gets an error row.
        progress: Called after every written part (`terminal_progress` prints a line).
        worker_class: The actor class (a `BatchWorker` subclass may customise `analyse`).
        num_cpus: CPUs of the local Ray started here (default: all of this machine's).
        limit: Analyse at most this many pending inputs (the rest is left for a later run).

    Returns:
        A `BatchSummary`; rows are in ``out/results/part-*.parquet`` (see `schema`).
    """
    check_address(address)  # before any work: Ray Data cannot run over Ray Client
    if face_fallback not in ("center", "skip"):  # checked here, not once per actor
        raise ValueError(f"face_fallback must be 'center' or 'skip', not {face_fallback!r}")
    if int(batch_size) < 1 or int(max_attempts) < 1:
        raise ValueError(
            f"batch_size and max_attempts must be at least 1, got {batch_size} and {max_attempts}"
        )
    started = time.perf_counter()
    out = Path(out)
    if not model:  # imported only then: the driver needs no torch (a second saved at start)
        from emoclip.weights.registry import best_available

        model = best_available(weights_dirs=weights_dirs)
    if Path(model).is_file():
        model = str(Path(model).resolve())
    key = config_key(model, classes, face_fallback, frame_fps)
    table = expand_inputs(inputs)
    total = table.num_rows
    (out / RESULTS_DIR).mkdir(parents=True, exist_ok=True)
    (out / TIMELINE_DIR).mkdir(parents=True, exist_ok=True)
    _clean(out)
    done = done_keys(out, with_errors=not retry_errors)
    pending_idx = [
        i for i, k in enumerate(table.column("input_key").to_pylist()) if (k, key) not in done
    ]
    skipped = total - len(pending_idx)
    if limit is not None:
        pending_idx = pending_idx[: max(0, int(limit))]
    pending = table.take(pa.array(pending_idx, type=pa.int64()))
    summary = BatchSummary(
        out=out, total=total, skipped=skipped, done=0, errors=0, seconds=0.0, workers=0
    )
    if not pending.num_rows:
        summary.seconds = time.perf_counter() - started
        return summary

    ray = import_ray()
    check_not_client(ray)
    own = not ray.is_initialized()
    if own:
        start_ray(ray, address, num_cpus)
    try:
        summary.workers = pool_size(
            ray, workers, cpus_per_worker, gpus_per_worker, pending.num_rows
        )
        ds = _dataset(ray, pending, batch_size, summary.workers).map_batches(
            worker_class,
            fn_constructor_kwargs=dict(
                model=model,
                classes=classes,
                config_key=key,
                weights_dirs=list(weights_dirs),
                device=device or ("cuda" if gpus_per_worker else "cpu"),
                face_fallback=face_fallback,
                threads=max(1, int(cpus_per_worker)),
                frame_fps=frame_fps,
                settings=settings if settings is not None else AnalysisSettings.from_env(),
                attempts=ray.remote(num_cpus=0)(AttemptCounter).remote(),
                max_attempts=max_attempts,
            ),
            batch_size=batch_size,
            batch_format="pyarrow",
            # two calls in flight per actor: one running, one queued (no idle gap, no hoarding)
            compute=ray.data.ActorPoolStrategy(
                size=summary.workers, max_tasks_in_flight_per_actor=2
            ),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
        )
        with _quiet("ray.data"):  # "execution finished" and other per-run INFO lines
            _consume(ds, out, summary, pending.num_rows, progress, started)
    finally:
        if own:
            stop_ray(ray)
    summary.seconds = time.perf_counter() - started
    return summary


@contextlib.contextmanager
def _quiet(name: str, level: int = logging.ERROR) -> Iterator[None]:
    """Raise a logger's level for the duration of the block."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(level, before))
    try:
        yield
    finally:
        logger.setLevel(before)


def _dataset(ray, pending: pa.Table, batch_size: int, workers: int):
    """The pending rows as a Ray dataset of blocks of `batch_size` rows (coarser beyond MAX_BLOCKS)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.print_on_execution_start = False
    if ctx.enable_progress_bars:  # our own progress line instead (Ray Data logs a warning for it)
        with _quiet("ray.data"):
            ctx.enable_progress_bars = False
    rows = max(int(batch_size), math.ceil(pending.num_rows / MAX_BLOCKS))
    blocks = [pending.slice(i, rows) for i in range(0, pending.num_rows, rows)]
    return ray.data.from_arrow(blocks)


def _consume(
    ds, out: Path, summary: BatchSummary, total: int, progress: Progress | None, started: float
) -> None:
    """Write each finished block as a results part (and its timeline part), never a key twice."""
    run = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    written: set[tuple[str, str]] = set()
    seq = 0
    for block in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        keys = list(
            zip(block.column("input_key").to_pylist(), block.column("config_key").to_pylist())
        )
        keep = [i for i, k in enumerate(keys) if k not in written]
        if len(keep) < len(keys):
            block = block.take(keep)
        if not block.num_rows:
            continue
        written.update(keys[i] for i in keep)
        name = f"part-{run}-{seq:06d}.parquet"
        seq += 1
        _write(_timeline(block), out / TIMELINE_DIR / name)
        results = block.drop_columns(["_windows"])
        _write(results, out / RESULTS_DIR / name)  # last: the inputs count as done from here
        summary.parts.append(out / RESULTS_DIR / name)
        summary.done += results.num_rows
        summary.errors += results.num_rows - results.column("error").null_count
        if progress:
            progress(
                BatchProgress(summary.done, total, summary.errors, time.perf_counter() - started)
            )


def export_csv(out: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the results of `out` as CSV: one row per input, one column per class probability
    (``p:<class>``) when all rows share a class set, else ``probabilities`` as JSON; no embedding."""
    table = read_results(out)
    path = Path(path)
    if not table.num_rows:
        path.write_text("", encoding="utf-8")
        return path
    frame = table.drop_columns(["embedding"]).to_pandas(integer_object_nulls=True)
    class_lists = {tuple(c) for c in frame["classes"] if c is not None}
    probs = frame.pop("probabilities")
    if len(class_lists) == 1:
        names = list(next(iter(class_lists)))
        for j, name in enumerate(names):
            frame[f"p:{name}"] = [None if p is None else float(p[j]) for p in probs]
    else:
        frame["probabilities"] = [
            None if p is None else json.dumps([float(v) for v in p]) for p in probs
        ]
    frame["classes"] = ["|".join(c) if c is not None else "" for c in frame["classes"]]
    frame["warnings"] = ["; ".join(w) if w is not None else "" for w in frame["warnings"]]
    frame.to_csv(path, index=False)
    return path


def describe(summary: BatchSummary) -> str:
    """One line about a finished run."""
    return (
        f"{summary.done} analysed ({summary.errors} with errors), {summary.skipped} already done, "
        f"{summary.total} inputs; {summary.workers} workers, {summary.seconds:.1f} s -> {summary.out}"
    )


__all__ = [
    "AttemptCounter",
    "BatchProgress",
    "BatchSummary",
    "config_key",
    "describe",
    "done_keys",
    "export_csv",
    "read_results",
    "result_parts",
    "run_batch",
    "terminal_progress",
]
