"""`run_batch`: analyse a collection of inputs with Ray Data and stream the results to Parquet.

The pipeline is Ray Data's batch-inference pattern: a dataset of input rows (`inputs`), then
``map_batches`` with a fixed pool of `BatchWorker` actors that each hold the model, consumed by
the driver with ``iter_batches``; every finished block is written at once as its own Parquet part
(to a temporary name, then moved into place: `store.ResultsStore`), so a killed run leaves only
complete parts. Resuming skips the ``(input_key, config_key)`` pairs already in ``out/results``
(`plan`: the input's content key and the digest of the run's provenance).

Retries: Ray restarts a dead actor and re-runs its batch (Ray Data's actor defaults,
``max_restarts=-1, max_task_retries=-1``); only a finished batch reaches the driver, so a retried
input is written once. An `AttemptCounter` actor bounds the retries of an input that kills its
worker every time (`max_attempts`): it then gets an error row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa

from emoclip.batch.cluster import (
    check_address,
    check_not_client,
    import_ray,
    pool_size,
    start_ray,
    stop_ray,
)
from emoclip.batch.plan import BatchPlan, batch_settings, plan_batch
from emoclip.batch.progress import (
    BatchProgress,
    BatchSummary,
    Progress,
)
from emoclip.batch.schema import RESULTS_DIR, TIMELINE_DIR, timeline_schema
from emoclip.batch.store import ResultsStore
from emoclip.batch.worker import BatchWorker
from emoclip.classes import ClassSet
from emoclip.settings import AnalysisSettings, ModelLocations

MAX_BLOCKS = 20_000  # more inputs than this share blocks (Ray's per-block bookkeeping stays small)


class AttemptCounter:
    """Counts the unfinished starts of each input across actor restarts (a tiny Ray actor)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def start(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def finish(self, key: str) -> None:
        self.counts.pop(key, None)


def result_parts(out: str | os.PathLike, table: str = RESULTS_DIR) -> list[str]:
    """The complete Parquet parts of a results folder (local path or URI; sorted by name)."""
    return ResultsStore(out).parts(table)


def read_results(
    out: str | os.PathLike, table: str = RESULTS_DIR, columns: Sequence[str] | None = None
) -> pa.Table:
    """All parts of a results folder's `table` ("results" or "timeline") as one Arrow table."""
    return ResultsStore(out).read(table, columns)


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
    locations: ModelLocations | None = None,
    retry_errors: bool = False,
    max_attempts: int = 3,
    progress: Progress | None = None,
    worker_class: type[BatchWorker] = BatchWorker,
    num_cpus: int | None = None,
    limit: int | None = None,
) -> BatchSummary:
    """Analyse every input not yet in `out`, streaming results to ``out/results`` and ``out/timeline``.

    Args:
        inputs: Files, folders and manifests, local paths or URIs (`inputs.expand_inputs`).
        out: Results folder, a local path or a URI (`store`); re-running with it resumes: an
            input is analysed again only when it or the run's provenance changed (`plan`).
        model: Registry name, ``.safetensors`` path or Hub id ``owner/name[@revision]``
            (default: the best available, as `predict`); one that cannot be found is an error
            before any work, never a switch to another model.
        classes: Class set (default: the model's own).
        weights_dirs: Extra folders with NAME.safetensors (on every node).
        address: Ray cluster to join from one of its nodes: ``"auto"`` or ``"HOST:PORT"``; None
            uses ``RAY_ADDRESS`` when set, else starts (and afterwards stops) Ray here; a Ray
            already initialised in this process is used and left running; ``ray://`` is refused.
        workers, cpus_per_worker, gpus_per_worker, batch_size, device, max_attempts,
            worker_class: The actor pool (`PoolOptions`).
        face_fallback: ``"center"`` or ``"skip"``.
        frame_fps: Frame rate of frame folders (default: ``settings.frame_folder_fps``, 25).
        settings, locations: Every worker's analysis settings (`face_fallback` and `frame_fps`
            on top) and where it looks for the weights (`ModelLocations`); default: `from_env`,
            the driver's ``EMOCLIP_*`` variables. Workers receive both, reading no environment.
        retry_errors: Analyse inputs again whose earlier row has an error.
        progress: Called after every written part (`terminal_progress` prints a line).
        num_cpus: CPUs of the local Ray started here (default: all of this machine's).
        limit: Analyse at most this many pending inputs (the rest is left for a later run).

    Returns:
        A `BatchSummary`; rows are in ``out/results/part-*.parquet`` (see `schema`).
    """
    check_address(address)  # before any work: Ray Data cannot run over Ray Client
    pool = PoolOptions(
        workers, cpus_per_worker, gpus_per_worker, batch_size, device, max_attempts,
        worker_class, tuple(weights_dirs),
    )  # fmt: skip
    started, store = time.perf_counter(), ResultsStore(out)
    plan = plan_batch(
        inputs, store, model=model, classes=classes, weights_dirs=weights_dirs,
        settings=batch_settings(face_fallback, frame_fps, settings), retry_errors=retry_errors, limit=limit,
        locations=locations if locations is not None else ModelLocations.from_env(),
    )  # fmt: skip
    summary = BatchSummary(
        str(out), plan.total, plan.skipped, 0, 0, 0.0, 0,
        config_key=plan.key, provenance=plan.provenance.as_dict(),
    )  # fmt: skip
    if plan.pending.num_rows:
        ray = import_ray()
        check_not_client(ray)
        if own := not ray.is_initialized():
            start_ray(ray, address, num_cpus)
        try:
            _execute(ray, plan, store, pool, summary, progress, started)
        finally:
            if own:
                stop_ray(ray)
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass(frozen=True)
class PoolOptions:
    """The actor pool of a run.

    Attributes:
        workers: Actors (default: the cluster's CPUs // `cpus_per_worker`, at most one per
            pending input).
        cpus_per_worker: CPUs reserved per actor (also its torch threads).
        gpus_per_worker: GPUs per actor (the model then runs on ``cuda``).
        batch_size: Inputs per actor call (a crashed call re-runs this many inputs).
        device: torch device (default ``cuda`` with GPUs, else ``cpu``).
        max_attempts: Starts of an input that killed its worker before it gets an error row.
        worker_class: The actor class (a `BatchWorker` subclass may customise `predict_row`).
        weights_dirs: Extra folders with NAME.safetensors.
    """

    workers: int | None = None
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0
    batch_size: int = 1
    device: str | None = None
    max_attempts: int = 3
    worker_class: type = BatchWorker
    weights_dirs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1 or int(self.max_attempts) < 1:
            raise ValueError(
                f"batch_size and max_attempts must be at least 1, got {self.batch_size} and "
                f"{self.max_attempts}"
            )


def _execute(
    ray, plan: BatchPlan, store: ResultsStore, pool: PoolOptions, summary: BatchSummary,
    progress: Progress | None, started: float,
) -> None:  # fmt: skip
    """Run the pending inputs of `plan` on a pool of actors, writing parts to `store`."""
    store.create()
    store.clean()
    pending = plan.pending
    size = pool_size(ray, pool.workers, pool.cpus_per_worker, pool.gpus_per_worker, len(pending))
    summary.workers = size
    gpus = pool.gpus_per_worker
    ds = _dataset(ray, pending, pool.batch_size, size).map_batches(
        pool.worker_class,
        fn_constructor_kwargs=dict(
            model=plan.model,
            classes=plan.classes,
            config_key=plan.key,
            settings=plan.settings,
            provenance=plan.provenance.as_dict(),
            weights_dirs=list(pool.weights_dirs),
            locations=plan.locations,
            device=pool.device or ("cuda" if gpus else "cpu"),
            threads=max(1, int(pool.cpus_per_worker)),
            attempts=ray.remote(num_cpus=0)(AttemptCounter).remote(),
            max_attempts=pool.max_attempts,
        ),
        batch_size=pool.batch_size,
        batch_format="pyarrow",
        # two calls in flight per actor: one running, one queued (no idle gap, no hoarding)
        compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=2),
        num_cpus=pool.cpus_per_worker,
        num_gpus=gpus or None,
    )
    with _quiet("ray.data"):  # "execution finished" and other per-run INFO lines
        _consume(ds, store, summary, len(pending), progress, started)


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
    ds, store: ResultsStore, summary: BatchSummary, total: int, progress: Progress | None,
    started: float,
) -> None:  # fmt: skip
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
        store.write(_timeline(block), TIMELINE_DIR, name)
        results = block.drop_columns(["_windows"])
        # last: the inputs count as done from here
        summary.parts.append(store.write(results, RESULTS_DIR, name))
        summary.done += results.num_rows
        summary.errors += results.num_rows - results.column("error").null_count
        if progress:
            progress(
                BatchProgress(summary.done, total, summary.errors, time.perf_counter() - started)
            )


def export_csv(out: str | os.PathLike, path: str | os.PathLike) -> str:
    """Write the results of `out` as CSV (a local path or URI): one row per input, one column per
    class probability (``p:<class>``) when all rows share a class set, else ``probabilities`` as
    JSON; no embedding, no provenance column: the runs' provenances (with their digests, the
    rows' ``config_key``) go to ``NAME.provenance.json`` beside it."""
    table = read_results(out)
    text = ""
    provenances: list[dict] = []
    if table.num_rows:
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
        found = dict(zip(frame["config_key"], frame.pop("provenance")))
        provenances = [json.loads(v) | {"digest": k} for k, v in found.items() if v]
        text = frame.to_csv(index=False)
    return _write_csv(str(path), text, provenances)


def _write_csv(path: str, text: str, provenances: list[dict]) -> str:
    from emoclip.batch.store import open_location

    fs, inner = open_location(path)
    with fs.open_output_stream(inner) as fh:
        fh.write(text.encode("utf-8", "backslashreplace"))
    if provenances:
        side = inner[: -len(".csv")] if inner.endswith(".csv") else inner
        data = provenances[0] if len(provenances) == 1 else provenances
        with fs.open_output_stream(side + ".provenance.json") as fh:
            fh.write(json.dumps(data, indent=2).encode("utf-8", "backslashreplace") + b"\n")
    return path


__all__ = [
    "AttemptCounter",
    "PoolOptions",
    "export_csv",
    "read_results",
    "result_parts",
    "run_batch",
]
