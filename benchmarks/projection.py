"""P8 and P11, projecting embeddings: UMAP and t-SNE on 2,000 embeddings, warm and first (P8); the
latent explorer loading a results folder of 50,000 Parquet embeddings and projecting them (P11).
Each runs in a fresh process (`bench_p8`, `bench_p11` start `p8_child`, `p11_child`)."""

from __future__ import annotations

import importlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .timing import best_of, log, run_child
from .work import WorkCounter


def clustered_embeddings(points: int, dim: int, clusters: int = 11) -> np.ndarray:
    """(points, dim) float32 embeddings around `clusters` random centres (seed 0), like the
    embeddings of clips of a few expressions."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(clusters, dim))
    picked = centres[
        rng.integers(0, clusters, points)
    ]  # before the noise: this order fixes the data
    return (picked + 0.6 * rng.normal(size=(points, dim))).astype(np.float32)


def bench_p8(points: int, methods: list[str], repeats: int) -> dict[str, Any]:
    """Each method in a fresh subprocess of its own (nothing imported or compiled by another method):
    the first projection, as a user of the app waits for it, then the best of `repeats` warm ones."""
    res: dict[str, Any] = {}
    for method in methods:
        with tempfile.TemporaryDirectory(prefix="emoclip-numba-") as numba_cache:
            flags = ["--p8-child", str(points), "--p8-methods", method, "--repeats", str(repeats)]
            # an empty numba cache: the first projection after installing, JIT compilation included
            child = run_child(flags, f"P8 child ({method})", NUMBA_CACHE_DIR=numba_cache)
        res["dim"], res["points"] = child["dim"], child["points"]
        res[method] = child[method]
    res["P8"] = max(res[m]["best_s"] for m in methods)
    res["first_projection_s"] = max(res[m]["first_s"] for m in methods)
    res["work"] = {
        "projection": {k: 0 for k in WorkCounter.KEYS}
    }  # P8 projects given embeddings: no model work
    log(
        f"  {points} x {res['dim']} embeddings, warm: "
        + "; ".join(f"{m} {res[m]['best_s']:.2f} s" for m in methods)
    )
    log(
        "  the first projection a user waits for (fresh process, the method's imports and JIT included): "
        + "; ".join(
            f"{m} {res[m]['first_s']:.2f} s (import {res[m]['import_s']:.1f} s)" for m in methods
        )
    )
    return res


def p8_child(points: int, methods: list[str], repeats: int) -> None:
    """In a fresh process with torch and emoclip.explore imported (as in the app): time the first
    `project` call of each method (its imports, numba JIT and the fit), then `repeats` warm ones."""
    import torch  # noqa: F401 - the app has torch loaded before a user asks for a projection

    from emoclip.explore import project

    dim = 512
    x = clustered_embeddings(points, dim)
    res: dict[str, Any] = {"points": points, "dim": dim}
    packages = {
        "umap": "umap",
        "tsne": "sklearn.manifold",
    }  # what `project` imports for each method
    for method in methods:
        t0 = time.perf_counter()
        if method in packages:
            importlib.import_module(packages[method])
        imported = time.perf_counter() - t0
        project(x, method, seed=0)  # the first call: numba JIT (umap) and the fit
        first = time.perf_counter() - t0
        best, runs = best_of(lambda method=method: project(x, method, seed=0), repeats, warmup=0)
        res[method] = {"first_s": first, "import_s": imported, "best_s": best, "runs_s": runs}
    print(json.dumps(res))


def bench_p11(points: int) -> dict[str, Any]:
    """The explorer's load and projections of `points` embeddings, in a fresh process (`p11_child`)."""
    res = run_child(["--p11-child", str(points)], "P11 child")
    log(
        f"  {points} x {res['dim']}: load {res['load_s']:.1f} s, PCA {res['pca_s']:.1f} s, UMAP on "
        f"{res['sample']} + placement {res['umap_s']:.1f} s (import {res['umap_import_s']:.1f} s, JIT warm-up "
        f"{res['umap_warmup_s']:.1f} s, separately); index build {res['index_s']:.1f} s, "
        f"{res['query_ms']:.1f} ms per neighbour query"
    )
    return res


def _write_results_parts(folder: Path, x: np.ndarray) -> None:
    """The (N, D) embeddings ``x`` as the Parquet parts `emoclip batch` writes, 1,000 rows each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    points, dim = x.shape
    schema = pa.schema(
        [
            ("path", pa.string()),
            ("top", pa.string()),
            ("probabilities", pa.list_(pa.float32())),
            ("classes", pa.list_(pa.string())),
            ("embedding", pa.list_(pa.float32(), dim)),
            ("error", pa.string()),
            ("config_key", pa.string()),
            ("model", pa.string()),
        ]
    )
    folder.mkdir()
    for start in range(0, points, 1000):  # parts as `emoclip batch` writes them
        rows = range(start, min(points, start + 1000))
        table = pa.table(
            {
                "path": [f"/data/clip{i:06d}.mp4" for i in rows],
                "top": ["c0"] * len(rows),
                "probabilities": [[0.5, 0.5]] * len(rows),
                "classes": [["c0", "c1"]] * len(rows),
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(x[start : start + len(rows)].ravel()), dim
                ),
                "error": pa.nulls(len(rows), pa.string()),
                "config_key": ["k"] * len(rows),
                "model": ["m"] * len(rows),
            },
            schema=schema,
        )
        pq.write_table(table, folder / f"part-{start:08d}.parquet")


def p11_child(points: int) -> None:
    """In the fresh process: write `points` embeddings as the Parquet parts `emoclip batch` writes,
    then time loading the folder, PCA, UMAP (import and JIT warm-up apart) and the neighbour index;
    prints the figures as one JSON line."""
    from emoclip.explore.collection import (
        SAMPLE_SIZE,
        NeighbourIndex,
        load_results_folder,
        project_large,
    )
    from emoclip.explore.projection import project

    dim = 512
    x = clustered_embeddings(points, dim)
    with tempfile.TemporaryDirectory() as tmp:
        _write_results_parts(Path(tmp) / "results", x)
        t0 = time.perf_counter()
        coll = load_results_folder(tmp)
        load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    project_large(coll.embeddings, "pca")
    pca_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    import umap  # noqa: F401

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    project(coll.embeddings[:200], "umap", seed=0)  # numba JIT of umap's kernels
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    project_large(coll.embeddings, "umap", seed=0)
    umap_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = NeighbourIndex(coll.embeddings)
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(100):
        index.neighbours(i * (points // 100), k=10)
    query_ms = (time.perf_counter() - t0) * 10
    print(
        json.dumps(
            {
                "points": points,
                "dim": dim,
                "sample": min(points, SAMPLE_SIZE),
                "load_s": load_s,
                "pca_s": pca_s,
                "umap_s": umap_s,
                "umap_import_s": import_s,
                "umap_warmup_s": warmup_s,
                "index_s": index_s,
                "query_ms": query_ms,
                "P11": load_s + pca_s + umap_s,
            }
        )
    )
