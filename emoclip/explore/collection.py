"""The latent explorer at scale: a batch results folder (Parquet embeddings) of tens of thousands
of clips.

* `load_results_folder` reads the clip embeddings of ``emoclip batch`` results (pyarrow; only the
  columns it needs; rows with an error are left out).
* `project_large`: PCA on every point; t-SNE and UMAP are fitted on a random sample
  (`SAMPLE_SIZE`) and the other points are placed at the distance-weighted mean of their `PLACE_K`
  nearest sampled points (cosine, in the top-`INDEX_DIMS` principal components), so the cost of the
  non-linear methods stops growing with N beyond the sample.
* `NeighbourIndex`: nearest neighbours through a ball tree over the top-`INDEX_DIMS` principal
  components, candidates re-ranked by exact cosine in the full space: no full scan per query.

Limits (README, "Large collections"): the sampled methods show the sample's structure; points
placed by neighbours land inside it (a cluster absent from the sample is drawn on top of its
nearest sampled cluster). The index is approximate: a true neighbour can be missed when it is not
among the `CANDIDATES` x k nearest in the reduced space (recall is measured in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoclip.explore.points import MAX_ID_CHARS, LatentPoint
from emoclip.explore.projection import (
    check_matrix,
    l2_normalise,
    normalise_method,
    one_thread,
    project,
)

SAMPLE_SIZE = 4000  # points t-SNE / UMAP are fitted on (<= UMAP_PRECOMPUTED_MAX: exact neighbours)
PLACE_K = 5  # sampled neighbours that place each other point
INDEX_DIMS = 64  # principal components the neighbour index works in
CANDIDATES = 8  # the index fetches CANDIDATES * k points before the exact re-ranking
MAX_POINTS = 1_000_000  # a results folder with more clips than this is refused


@dataclass
class Collection:
    """Clips of a results folder.

    Attributes:
        paths: (N,) input paths.
        labels: (N,) top class of each clip.
        embeddings: (N, D) float32 L2-normalised clip embeddings.
        hovers: (N,) hover text (file name, top class and its probability).
        model: model name(s) of the rows.
    """

    paths: list[str]
    labels: list[str]
    embeddings: np.ndarray
    hovers: list[str] = field(default_factory=list)
    model: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    def points(self, rows: Sequence[int] | np.ndarray | None = None) -> list[LatentPoint]:
        """Rows (default all) as explorer points (kind "clip", label = top class) for `latent_figure`.

        The figure draws SVG markers: tens of thousands are slow in a browser, so draw a sample
        (e.g. the rows `project_large` fitted on) and look the rest up with `NeighbourIndex`.
        """
        rows = range(len(self)) if rows is None else [int(r) for r in rows]
        return [
            LatentPoint(
                Path(self.paths[i]).name[:MAX_ID_CHARS],
                "clip",
                str(self.labels[i]),
                self.embeddings[i],
                hover=self.hovers[i] if self.hovers else "",
            )
            for i in rows
        ]


def load_results_folder(
    folder: str | Path,
    *,
    config_key: str | None = None,
    max_points: int = MAX_POINTS,
    expected_dim: int | None = None,
) -> Collection:
    """The analysed clips of an ``emoclip batch`` results folder (or a folder of its Parquet parts).

    Args:
        folder: ``OUT`` of ``emoclip batch`` (its ``results/`` parts are read) or a folder of parts.
        config_key: Keep only rows of this configuration (a folder holding several models or
            class sets); by default all rows, which must share one embedding size.
        max_points: Refuse folders with more analysed clips.
        expected_dim: Refuse parts whose embeddings are not of this size (D, e.g. the model's).

    Raises:
        ValueError: no parts, a file that is not Parquet or lacks the results columns, embeddings
            of a size other than `expected_dim`, no analysed clip, more than `max_points`, or
            embeddings of different sizes (choose a `config_key`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = Path(folder)
    parts_dir = folder / "results" if (folder / "results").is_dir() else folder
    parts = sorted(parts_dir.glob("*.parquet"))
    if not parts:
        raise ValueError(f"{folder.name}: no Parquet results (expected results/part-*.parquet)")
    columns = [
        "path",
        "top",
        "probabilities",
        "classes",
        "embedding",
        "error",
        "config_key",
        "model",
    ]
    tables = []
    for part in parts:
        _check_part(part, columns, expected_dim)
        t = pq.read_table(part, columns=columns)
        t = t.filter(pc.is_null(t.column("error")))
        if config_key is not None:
            t = t.filter(pc.equal(t.column("config_key"), config_key))
        if t.num_rows:
            tables.append(t)
    if not tables:
        raise ValueError(
            f"{folder.name}: no analysed clips" + (f" for {config_key}" if config_key else "")
        )
    dims = {t.schema.field("embedding").type.list_size for t in tables}
    if len(dims) != 1:
        raise ValueError(
            f"{folder.name}: embeddings of sizes {sorted(dims)}; pass config_key= to choose one "
            "configuration"
        )
    table = pa.concat_tables(tables)
    n, d = table.num_rows, dims.pop()
    if n > max_points:
        raise ValueError(f"{folder.name}: {n} clips is more than the limit of {max_points}")
    emb = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    emb = l2_normalise(np.asarray(emb, dtype=np.float32).reshape(n, d)).astype(np.float32)
    paths = table.column("path").to_pylist()
    labels = table.column("top").to_pylist()
    top_p = [max(p) if p else 0.0 for p in table.column("probabilities").to_pylist()]
    hovers = [f"{Path(p).name}<br>{lab} {q:.2f}" for p, lab, q in zip(paths, labels, top_p)]
    models = sorted(set(table.column("model").to_pylist()))
    return Collection(paths, labels, emb, hovers, ", ".join(models))


def _check_part(part: Path, columns: Sequence[str], expected_dim: int | None) -> None:
    """ValueError unless `part` is a Parquet file with the results `columns` and a fixed-size
    float embedding (of `expected_dim` when given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(part)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{part.name}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ValueError(
            f"{part.name}: not an emoclip batch results part (missing columns "
            f"{', '.join(missing)}; expected results/part-*.parquet)"
        )
    kind = schema.field("embedding").type
    if not pa.types.is_fixed_size_list(kind) or not pa.types.is_floating(kind.value_type):
        raise ValueError(f"{part.name}: column embedding is {kind}, not a fixed-size float list")
    if expected_dim is not None and kind.list_size != int(expected_dim):
        raise ValueError(
            f"{part.name}: embeddings of size {kind.list_size}, but the model's are "
            f"{int(expected_dim)} (results of another model?)"
        )


def _basis(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), top-`dims` principal directions (D, r)) of the rows of `x`."""
    mean = x.mean(axis=0)
    xc = x - mean
    with one_thread():
        evals, evecs = np.linalg.eigh(xc.T @ xc)
    order = np.argsort(evals)[::-1][: min(dims, x.shape[1])]
    return mean, evecs[:, order]


class NeighbourIndex:
    """Approximate cosine nearest neighbours of (N, D) embeddings.

    A scikit-learn ball tree over the top-`dims` principal components finds ``candidates * k``
    points; they are re-ranked by exact cosine similarity in the full D dimensions.
    """

    def __init__(
        self, embeddings: np.ndarray, *, dims: int = INDEX_DIMS, candidates: int = CANDIDATES
    ) -> None:
        from sklearn.neighbors import BallTree

        self.embeddings = l2_normalise(check_matrix(embeddings)).astype(np.float32)
        self.mean, self.components = _basis(self.embeddings.astype(np.float64), dims)
        self.reduced = self._reduce(self.embeddings)
        self.tree = BallTree(self.reduced, leaf_size=40)
        self.candidates = max(1, int(candidates))

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float64) - self.mean) @ self.components

    def __len__(self) -> int:
        return len(self.embeddings)

    def query(self, vectors: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The `k` most cosine-similar rows to each of (Q, D) `vectors`.

        Returns:
            ``(rows (Q, k) int64, similarities (Q, k) float32)``, best first (k is capped at N).
        """
        q = l2_normalise(check_matrix(vectors, "vectors")).astype(np.float32)
        k = min(int(k), len(self))
        m = min(len(self), max(k, self.candidates * k))
        _, cand = self.tree.query(self._reduce(q), k=m)
        sims = np.einsum("qd,qmd->qm", q, self.embeddings[cand])
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(cand, order, 1), np.take_along_axis(sims, order, 1)

    def neighbours(self, index: int, k: int = 5) -> list[tuple[int, float]]:
        """Like `projection.nearest_neighbours`: ``[(row, cosine), ...]`` of row `index`, itself excluded."""
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"index {index} out of range for {n} embeddings")
        index = int(index) % n
        rows, sims = self.query(self.embeddings[index][None], k + 1)
        return [(int(r), float(s)) for r, s in zip(rows[0], sims[0]) if r != index][:k]


def project_large(
    embeddings: np.ndarray,
    method: str = "pca",
    *,
    sample: int = SAMPLE_SIZE,
    seed: int = 0,
    k: int = PLACE_K,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) embeddings -> ``(xy (N, 2) float64, fitted (N,) bool)``.

    PCA uses every point (``fitted`` all True). t-SNE and UMAP are fitted on `sample` random points
    (all when N <= sample); each other point is placed at the similarity-weighted mean of the 2-D
    positions of its `k` nearest sampled points (cosine in the top `INDEX_DIMS` components) and
    has ``fitted`` False.
    """
    m = normalise_method(method)
    x = l2_normalise(check_matrix(embeddings))
    n = len(x)
    if m == "pca" or n <= sample:
        return project(x, m, seed=seed), np.ones(n, dtype=bool)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(n, size=int(sample), replace=False))
    xy = np.zeros((n, 2))
    xy[chosen] = project(x[chosen], m, seed=seed)
    fitted = np.zeros(n, dtype=bool)
    fitted[chosen] = True
    rest = np.flatnonzero(~fitted)
    mean, comps = _basis(x[chosen], INDEX_DIMS)
    ref = l2_normalise((x[chosen] - mean) @ comps)
    with one_thread():
        for start in range(0, len(rest), 4096):
            rows = rest[start : start + 4096]
            sims = l2_normalise((x[rows] - mean) @ comps) @ ref.T  # (B, sample)
            near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            w = np.clip(np.take_along_axis(sims, near, 1), 0.0, None) + 1e-6
            xy[rows] = (w[:, :, None] * xy[chosen][near]).sum(1) / w.sum(1, keepdims=True)
    return xy, fitted
