"""2-D projections of embeddings (PCA, t-SNE, UMAP) and nearest neighbours in cosine space.

scikit-learn and umap-learn are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np

METHODS = ("pca", "tsne", "umap")

TSNE_PERPLEXITY = 50.0  # the authors' feat_scatter (reference.md §10)
TSNE_MAX_ITER = 500  # 250 early-exaggeration + 250 free iterations
UMAP_N_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
UMAP_N_EPOCHS = 200  # umap-learn's own default for large data; 500 for < 10k points otherwise
UMAP_PRECOMPUTED_MAX = 4096  # umap-learn's own exact-neighbour threshold; NN-descent above
MIN_POINTS_NONLINEAR = 4  # below this t-SNE / UMAP fall back to PCA


def check_matrix(embeddings: Any, name: str = "embeddings") -> np.ndarray:
    """Validate an (N, D) real, finite matrix and return it as float64."""
    x = np.asarray(embeddings)
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {x.shape}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} have dimension 0")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(f"{name} contain NaN or infinite values ({bad} of {len(x)} rows)")
    return x


def one_thread() -> contextlib.AbstractContextManager:
    """Context limiting BLAS/OpenMP pools to one thread (threadpoolctl, a scikit-learn dependency).

    On the shared 2-core machine, 2-thread OpenBLAS ``eigh`` of a 512x512 matrix took 3.3 s vs
    0.07 s with one thread, and sklearn's Barnes-Hut t-SNE 16 s vs 2.8 s; one thread also makes
    reductions bit-reproducible.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - numpy-only install
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of `x` (N, D) scaled to unit length; (N, D)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)  # an all-zero row stays zero


def normalise_method(method: str) -> str:
    """The canonical name of a projection method (case, "-" and "_" ignored); ValueError if unknown."""
    if not isinstance(method, str):
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    m = method.strip().lower().replace("-", "").replace("_", "")
    if m not in METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of {METHODS}")
    return m


def _pca2(x: np.ndarray) -> np.ndarray:
    """Top-2 principal-component scores; zero columns where the data have rank < 2.

    numpy only (no sklearn import). Deterministic: each column's largest-magnitude entry is made
    positive (what sklearn's ``svd_flip`` does for the scores).
    """
    n, d = x.shape
    out = np.zeros((n, 2))
    xc = x - x.mean(axis=0)
    if n < 2:
        return out
    if n >= d:  # covariance (D, D)
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        order = np.argsort(evals)[::-1][:2]
        scores = xc @ evecs[:, order]
        evals = evals[order]
    else:  # Gram (N, N)
        evals, evecs = np.linalg.eigh(xc @ xc.T)
        order = np.argsort(evals)[::-1][:2]
        evals = evals[order]
        scores = evecs[:, order] * np.sqrt(np.clip(evals, 0.0, None))
    total = max(float(np.sum(xc * xc)), 1e-300)
    for j in range(scores.shape[1]):
        if evals[j] <= 1e-12 * total:  # no variance left in this direction: leave zeros
            continue
        col = scores[:, j]
        if col[np.argmax(np.abs(col))] < 0:
            col = -col
        out[:, j] = col
    return out


def _tsne(x: np.ndarray, seed: int, perplexity: float | None) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(x)
    limit = max(1.0, (n - 1) / 3.0)  # sklearn needs perplexity < N; 3*perplexity neighbours
    p = TSNE_PERPLEXITY if perplexity is None else float(perplexity)
    if not p > 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity!r}")
    if p > limit:
        if perplexity is not None:
            warnings.warn(
                f"t-SNE perplexity {p:g} is too large for {n} points; using {limit:g}",
                UserWarning,
                stacklevel=3,
            )
        p = limit
    tsne = TSNE(
        n_components=2,
        perplexity=p,
        init="pca",
        learning_rate="auto",
        max_iter=TSNE_MAX_ITER,
        method="barnes_hut",
        angle=0.5,
        random_state=seed,
    )
    with one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def _umap(x: np.ndarray, seed: int, n_neighbors: int | None) -> np.ndarray:
    n = len(x)
    k = UMAP_N_NEIGHBORS if n_neighbors is None else int(n_neighbors)
    if k < 2:
        raise ValueError(f"n_neighbors must be >= 2, got {n_neighbors!r}")
    if k > n - 1:
        if n_neighbors is not None:
            warnings.warn(
                f"UMAP n_neighbors {k} is too large for {n} points; using {n - 1}",
                UserWarning,
                stacklevel=3,
            )
        k = n - 1
    with one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba / n_jobs / spectral-init chatter
        import umap

        if n <= UMAP_PRECOMPUTED_MAX:
            # umap-learn computes small data's exact neighbours with sklearn pairwise_distances
            # and a numba callable: one Python call per pair, ~3 s for 2,000 points. The same
            # Euclidean matrix from one matmul takes milliseconds.
            gram = x @ x.T
            data = np.sqrt(np.clip(2.0 - 2.0 * gram, 0.0, None)).astype(np.float32)
            np.fill_diagonal(data, 0.0)
            metric = "precomputed"
        else:
            data, metric = x.astype(np.float32), "euclidean"
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=k,
            min_dist=UMAP_MIN_DIST,
            metric=metric,
            n_epochs=UMAP_N_EPOCHS,
            init="spectral",
            random_state=seed,
            n_jobs=1,
            low_memory=True,
            transform_seed=seed,
            verbose=False,
        )
        return np.asarray(reducer.fit_transform(data), dtype=np.float64)


def project(
    embeddings: np.ndarray,
    method: str = "pca",
    *,
    seed: int = 0,
    perplexity: float | None = None,
    n_neighbors: int | None = None,
) -> np.ndarray:
    """Project (N, D) embeddings to (N, 2) float64 coordinates.

    The rows are L2-normalised first (cosine geometry). ``method`` is "pca", "tsne" or "umap"
    ("t-SNE", "UMAP" etc. are accepted). Results are deterministic for a given ``seed``.

    * pca: numpy eigendecomposition; rank < 2 (N <= 2, identical points) gives zero columns.
    * tsne: sklearn Barnes-Hut t-SNE, perplexity 50 by default (the authors' plots), clamped to
      (N-1)/3 for small N; PCA initialisation, automatic learning rate, 500 iterations, 1 thread.
    * umap: umap-learn with n_neighbors 15 by default, clamped to N-1; 200 epochs, low_memory.

    t-SNE and UMAP need at least 4 points; with fewer, PCA is used and a ``UserWarning`` says so.
    N = 0 returns an empty (0, 2) array.

    Raises:
        ValueError: unknown method, not 2-D, non-numeric, NaN/inf, bad perplexity/n_neighbors.
    """
    m = normalise_method(method)
    x = check_matrix(embeddings)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2))
    x = l2_normalise(x)
    if m != "pca" and n < MIN_POINTS_NONLINEAR:
        warnings.warn(
            f"{m} needs at least {MIN_POINTS_NONLINEAR} points, got {n}; using PCA",
            UserWarning,
            stacklevel=2,
        )
        m = "pca"
    if m == "pca":
        with one_thread():
            return _pca2(x)
    if m == "tsne":
        return _tsne(x, int(seed), perplexity)
    return _umap(x, int(seed), n_neighbors)


def nearest_neighbours(embeddings: np.ndarray, index: int, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` most cosine-similar rows to row ``index`` (itself excluded), best first.

    Returns ``[(row, cosine similarity), ...]``; ties go to the lower row. ``k`` larger than N-1
    returns all the other rows. Raises IndexError for an index out of range, ValueError for bad
    embeddings or negative k.
    """
    x = check_matrix(embeddings)
    n = len(x)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"index must be an integer, got {index!r}")
    if not -n <= int(index) < n:
        raise IndexError(f"index {index} out of range for {n} embeddings")
    index = int(index) % n
    if int(k) < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    x = l2_normalise(x)
    sims = x @ x[index]
    others = np.delete(np.arange(n), index)
    order = others[np.lexsort((others, -sims[others]))][: int(k)]
    return [(int(i), float(sims[i])) for i in order]
