"""Batch analysis of large collections on Ray Data (``pip install 'emoclip[scale]'``).

    from emoclip.batch import run_batch, read_results
    summary = run_batch(["clips/", "manifest.csv"], "results/", model="emoclip-vitb32")
    table = read_results("results/")          # pyarrow.Table, one row per input

This is the only part of `emoclip` that imports Ray (and pyarrow); `run_batch` starts a local Ray
when none is running (or joins ``address`` / ``RAY_ADDRESS``). Modules: `inputs` (INPUTS and
manifests to rows), `worker` (the model-holding actor), `run` (pipeline, resume, progress,
CSV export), `plan` (the run's provenance and the resume rule), `store` (local folders and
``s3://``/``gs://``/``hdfs://`` URIs), `fetch` (a URI's input as a local file), `progress`,
`cluster` (starting, joining and stopping Ray), `schema` (the Parquet columns).
"""

from __future__ import annotations

from emoclip.batch.inputs import InputError, expand_inputs
from emoclip.batch.plan import done_keys
from emoclip.batch.progress import BatchProgress, BatchSummary, describe, terminal_progress
from emoclip.batch.run import export_csv, read_results, run_batch
from emoclip.batch.worker import BatchWorker

__all__ = [
    "BatchProgress",
    "BatchSummary",
    "BatchWorker",
    "InputError",
    "describe",
    "done_keys",
    "expand_inputs",
    "export_csv",
    "read_results",
    "run_batch",
    "terminal_progress",
]
