"""Latent explorer: 2-D projections of clip and prototype embeddings, plotly figures, file I/O.

numpy in, numpy / plotly out. scikit-learn, umap-learn and plotly are imported inside the functions
that need them, so importing this module costs nothing beyond numpy (``import umap`` alone takes
seconds and its first fit in a process ~14 s of numba JIT).

    pts = [LatentPoint("a.mp4", "clip", "happy", emb_a, hover="happy 0.81"), ...]
    xy = project(np.stack([p.embedding for p in pts]), "tsne", seed=0)
    fig = latent_figure(pts, xy, title="t-SNE")

Embeddings are L2-normalised before projecting, so Euclidean distances in the projections' input
are monotone in cosine similarity, the similarity the model scores with.

Loading is for untrusted uploads: ``np.load(..., allow_pickle=False)``, size / point / dimension
limits checked before data are used, and ``media`` is never read from a file (a path from an
upload must not decide which server file gets shown); saving never writes ``media`` either.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = [
    "KINDS",
    "METHODS",
    "PROTOTYPE_KINDS",
    "LatentPoint",
    "label_colours",
    "latent_figure",
    "load_embeddings",
    "nearest_neighbours",
    "project",
    "save_embeddings",
    "stack_embeddings",
]

KINDS = ("clip", "example", "uploaded", "class", "compound")
PROTOTYPE_KINDS = ("class", "compound")
METHODS = ("pca", "tsne", "umap")

TSNE_PERPLEXITY = 50.0  # the authors' feat_scatter (reference.md §10)
TSNE_MAX_ITER = 500  # 250 early-exaggeration + 250 free iterations
UMAP_N_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
UMAP_N_EPOCHS = 200  # umap-learn's own default for large data; 500 for < 10k points otherwise
UMAP_PRECOMPUTED_MAX = 4096  # umap-learn's own exact-neighbour threshold; NN-descent above
MIN_POINTS_NONLINEAR = 4  # below this t-SNE / UMAP fall back to PCA

_KIND_SYMBOL = {"clip": "circle", "example": "square", "uploaded": "triangle-up",
                "class": "diamond", "compound": "star"}
_KIND_TITLE = {"clip": "session clips", "example": "example clips", "uploaded": "uploaded",
               "class": "class prototypes", "compound": "compound prototypes"}
# D3 category10, then category20b/20c hues: distinct for the 11 MAFW classes and the compounds.
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
    "#e6550d", "#31a354", "#756bb1", "#636363", "#9c9ede", "#cedb9c", "#e7cb94", "#e7969c",
    "#de9ed6", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#969696",
)
_MAX_ID = 200
_MAX_HOVER = 2000


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class LatentPoint:
    """One point of the latent explorer.

    Attributes:
        id: unique-ish display id (clip file name, class name, ...).
        kind: one of ``KINDS``: "clip" | "example" | "uploaded" (clip-like) or "class" | "compound"
            (text prototypes).
        label: predicted class for clips, the class name for prototypes; decides the colour.
        embedding: (D,) embedding (any scale; projections normalise).
        hover: extra hover text, e.g. the top-3 with probabilities; newlines become line breaks.
        media: path of the clip to show when the point is picked (never saved or loaded).
    """

    id: str
    kind: str
    label: str
    embedding: np.ndarray
    hover: str = ""
    media: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"LatentPoint kind must be one of {KINDS}, got {self.kind!r}")
        self.embedding = np.asarray(self.embedding)
        if self.embedding.ndim != 1:
            raise ValueError(
                f"LatentPoint embedding must be 1-D (D,), got shape {self.embedding.shape}")

    @property
    def is_prototype(self) -> bool:
        return self.kind in PROTOTYPE_KINDS


def stack_embeddings(points: Sequence[LatentPoint]) -> np.ndarray:
    """(N, D) float32 array of the points' embeddings; ValueError if the dimensions differ."""
    if not points:
        raise ValueError("no points")
    dims = {p.embedding.shape[0] for p in points}
    if len(dims) != 1:
        raise ValueError(f"points have different embedding dimensions: {sorted(dims)}")
    return np.stack([np.asarray(p.embedding, dtype=np.float32) for p in points])


def _check_matrix(embeddings: Any, name: str = "embeddings") -> np.ndarray:
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


def _one_thread():
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


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)  # an all-zero row stays zero


# --------------------------------------------------------------------------------------------
# Projections


def _normalise_method(method: str) -> str:
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
            warnings.warn(f"t-SNE perplexity {p:g} is too large for {n} points; using {limit:g}",
                          UserWarning, stacklevel=3)
        p = limit
    tsne = TSNE(n_components=2, perplexity=p, init="pca", learning_rate="auto",
                max_iter=TSNE_MAX_ITER, method="barnes_hut", angle=0.5, random_state=seed)
    with _one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def _umap(x: np.ndarray, seed: int, n_neighbors: int | None) -> np.ndarray:
    n = len(x)
    k = UMAP_N_NEIGHBORS if n_neighbors is None else int(n_neighbors)
    if k < 2:
        raise ValueError(f"n_neighbors must be >= 2, got {n_neighbors!r}")
    if k > n - 1:
        if n_neighbors is not None:
            warnings.warn(f"UMAP n_neighbors {k} is too large for {n} points; using {n - 1}",
                          UserWarning, stacklevel=3)
        k = n - 1
    with _one_thread(), warnings.catch_warnings():
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
            n_components=2, n_neighbors=k, min_dist=UMAP_MIN_DIST, metric=metric,
            n_epochs=UMAP_N_EPOCHS, init="spectral", random_state=seed, n_jobs=1,
            low_memory=True, transform_seed=seed, verbose=False,
        )
        return np.asarray(reducer.fit_transform(data), dtype=np.float64)


def project(embeddings: np.ndarray, method: str = "pca", *, seed: int = 0,
            perplexity: float | None = None, n_neighbors: int | None = None) -> np.ndarray:
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
    m = _normalise_method(method)
    x = _check_matrix(embeddings)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2))
    x = _l2(x)
    if m != "pca" and n < MIN_POINTS_NONLINEAR:
        warnings.warn(f"{m} needs at least {MIN_POINTS_NONLINEAR} points, got {n}; using PCA",
                      UserWarning, stacklevel=2)
        m = "pca"
    if m == "pca":
        with _one_thread():
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
    x = _check_matrix(embeddings)
    n = len(x)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"index must be an integer, got {index!r}")
    if not -n <= int(index) < n:
        raise IndexError(f"index {index} out of range for {n} embeddings")
    index = int(index) % n
    if int(k) < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    x = _l2(x)
    sims = x @ x[index]
    others = np.delete(np.arange(n), index)
    order = others[np.lexsort((others, -sims[others]))][: int(k)]
    return [(int(i), float(sims[i])) for i in order]


# --------------------------------------------------------------------------------------------
# Figure


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per distinct label: sorted labels take the palette in order (cycled past 30)."""
    return {lab: _PALETTE[i % len(_PALETTE)] for i, lab in enumerate(sorted(set(labels)))}


def _esc(text: str, limit: int) -> str:
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>")


def latent_figure(points: Sequence[LatentPoint], coords: np.ndarray, *, title: str = "",
                  selected: int | None = None) -> go.Figure:
    """Scatter of the projected points.

    One trace per (kind, label), in ``KINDS`` order then label order, legend-grouped by kind.
    Clip-like points are small markers (circle for session clips, square for examples, triangle
    for uploads), prototypes larger diamonds (classes) / stars (compounds) with their name as
    text. The colour is the label's, shared by clips and prototypes. ``customdata`` rows are
    ``[index, id, kind, label, hover]`` where ``index`` is the point's position in ``points``
    (for click handlers). ``selected`` (a point index) is highlighted with plotly's
    ``selectedpoints`` (the rest is dimmed) and an arrow. No WebGL, LaTeX or map traces.
    """
    import plotly.graph_objects as go

    n = len(points)
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape != (n, 2):
        raise ValueError(f"coords must have shape ({n}, 2) for {n} points, got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("coords contain NaN or infinite values")
    if selected is not None:
        if isinstance(selected, bool) or not isinstance(selected, (int, np.integer)):
            raise ValueError(f"selected must be a point index, got {selected!r}")
        if not 0 <= int(selected) < n:
            raise IndexError(f"selected index {selected} out of range for {n} points")
        selected = int(selected)

    colours = label_colours([p.label for p in points])
    n_clips = sum(not p.is_prototype for p in points)
    clip_size = 9 if n_clips <= 200 else 7 if n_clips <= 1000 else 5
    clip_opacity = 0.85 if n_clips <= 200 else 0.7
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault((p.kind, p.label), []).append(i)
    order = sorted(groups, key=lambda kl: (KINDS.index(kl[0]), kl[1]))

    hovertemplate = ("<b>%{customdata[1]}</b><br>%{customdata[2]} · %{customdata[3]}"
                     "<br>%{customdata[4]}<extra></extra>")
    fig = go.Figure()
    for kind, label in order:
        idx = groups[(kind, label)]
        proto = kind in PROTOTYPE_KINDS
        custom = np.empty((len(idx), 5), dtype=object)
        for r, i in enumerate(idx):
            p = points[i]
            custom[r] = [i, _esc(p.id, _MAX_ID), kind, _esc(p.label, _MAX_ID),
                         _esc(p.hover, _MAX_HOVER)]
        marker = dict(symbol=_KIND_SYMBOL[kind], color=colours[label])
        if proto:
            marker.update(size=16 if kind == "class" else 18, opacity=1.0,
                          line=dict(color="#222222", width=1.5))
        else:
            marker.update(size=clip_size, opacity=clip_opacity, line=dict(color="white", width=0.5))
        trace = go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers+text" if proto else "markers",
            name=_esc(label, 60), legendgroup=kind, legendgrouptitle_text=_KIND_TITLE[kind],
            marker=marker, customdata=custom, hovertemplate=hovertemplate,
            meta={"kind": kind, "label": label},
        )
        if proto:
            trace.update(text=[_esc(points[i].label, 60) for i in idx], textposition="top center",
                         textfont=dict(size=12, color="#111111"), cliponaxis=False)
        if selected is not None:
            trace.update(selectedpoints=[r for r, i in enumerate(idx) if i == selected],
                         selected=dict(marker=dict(opacity=1.0)),
                         unselected=dict(marker=dict(opacity=0.25)))
        fig.add_trace(trace)

    if selected is not None:
        p = points[selected]
        fig.add_annotation(x=xy[selected, 0], y=xy[selected, 1], text=_esc(p.id, 60),
                           showarrow=True, arrowhead=2, arrowwidth=2, arrowcolor="#000000",
                           ax=40, ay=-40, bgcolor="rgba(255,255,255,0.85)",
                           bordercolor="#000000", borderwidth=1)

    fig.update_layout(
        title=dict(text=_esc(title, 200)) if title else None,
        template="plotly_white", hovermode="closest", dragmode="zoom",
        legend=dict(itemsizing="constant", groupclick="toggleitem", tracegroupgap=8),
        margin=dict(l=20, r=20, t=60 if title else 30, b=20), height=640,
        xaxis=dict(showticklabels=False, zeroline=False, showgrid=False, title=None),
        yaxis=dict(showticklabels=False, zeroline=False, showgrid=False, title=None,
                   scaleanchor="x", scaleratio=1),
        meta={"n_points": n, "selected": selected},
    )
    return fig


# --------------------------------------------------------------------------------------------
# Files


def save_embeddings(path: str | Path, points: Sequence[LatentPoint]) -> Path:
    """Write points to ``.npz`` (arrays ids, kinds, labels, hovers, embeddings) or ``.json``.

    A path without either suffix gets ``.npz``. Strings are stored as fixed-width unicode arrays,
    so the file loads with ``allow_pickle=False``. ``media`` is not written. Returns the path.
    """
    path = Path(path)
    emb = stack_embeddings(points)
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or infinite values")
    if path.suffix.lower() == ".json":
        data = [{"id": p.id, "kind": p.kind, "label": p.label, "hover": p.hover,
                 "embedding": [float(v) for v in e]} for p, e in zip(points, emb)]
        path.write_text(json.dumps(data), encoding="utf-8")
        return path
    if path.suffix.lower() != ".npz":
        path = path.with_name(path.name + ".npz")

    def strings(values: list[str]) -> np.ndarray:
        return np.array([str(v) for v in values], dtype=np.str_)

    with path.open("wb") as f:
        np.savez_compressed(
            f, ids=strings([p.id for p in points]), kinds=strings([p.kind for p in points]),
            labels=strings([p.label for p in points]), hovers=strings([p.hover for p in points]),
            embeddings=emb)
    return path


def _check_loaded(emb: np.ndarray, *, source: str, expected_dim: int | None,
                  max_points: int) -> np.ndarray:
    if emb.dtype.kind not in "fiu":
        raise ValueError(f"{source}: embeddings must be numbers, got dtype {emb.dtype}")
    if emb.ndim != 2:
        raise ValueError(f"{source}: embeddings must be a 2-D (N, D) array, got shape {emb.shape}")
    n, d = emb.shape
    if n == 0:
        raise ValueError(f"{source}: no embeddings")
    if n > max_points:
        raise ValueError(f"{source}: {n} points is more than the limit of {max_points}")
    if d < 1:
        raise ValueError(f"{source}: embeddings have dimension 0")
    if expected_dim is not None and d != expected_dim:
        raise ValueError(f"{source}: embeddings have dimension {d}, but the model's embeddings "
                         f"have dimension {expected_dim}")
    emb = emb.astype(np.float32)
    if not np.isfinite(emb).all():
        bad = int((~np.isfinite(emb)).any(axis=1).sum())
        raise ValueError(f"{source}: embeddings contain NaN or infinite values ({bad} rows)")
    return emb


def _strings(value: Any, n: int, name: str, source: str) -> list[str] | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "US" or arr.shape != (n,):
        raise ValueError(f"{source}: '{name}' must be {n} strings, got dtype {arr.dtype} and "
                         f"shape {arr.shape}")
    return [str(v) for v in arr.tolist()]


def _make_points(emb: np.ndarray, ids: list[str] | None, labels: list[str] | None,
                 kinds: list[str] | None, hovers: list[str] | None,
                 kind: str | None) -> list[LatentPoint]:
    n = len(emb)
    ids = ids or [f"uploaded-{i}" for i in range(n)]
    labels = labels or list(ids)
    points = []
    for i in range(n):
        k = kind or (kinds[i] if kinds and kinds[i] in KINDS else "uploaded")
        points.append(LatentPoint(
            id=ids[i][:_MAX_ID], kind=k, label=(labels[i] or ids[i])[:_MAX_ID],
            embedding=np.ascontiguousarray(emb[i]),
            hover=(hovers[i][:_MAX_HOVER] if hovers else "")))
    return points


def _check_npy_header(fp: Any, available: int, source: str) -> None:
    """Read a .npy header from `fp` and refuse arrays larger than the `available` data bytes.

    ``np.load`` allocates ``prod(shape) * itemsize`` bytes from the header before it reads the
    data, so a 100-byte file declaring a shape of (10**8, 10**8) would raise MemoryError (or
    reserve gigabytes) instead of a clear error.
    """
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(fp)
        read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                       else npy_format.read_array_header_2_0)
        shape, _, dtype = read_header(fp)
    except (ValueError, TypeError, SyntaxError, EOFError, OSError) as exc:
        raise ValueError(f"{source}: not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(f"{source}: contains an object (pickled) array, which is refused")
    count = 1
    for side in shape:
        count *= int(side)
    if count * dtype.itemsize > available:
        raise ValueError(f"{source}: its header declares a {'x'.join(map(str, shape)) or 'scalar'} "
                         f"array, more data than the file holds")


def _load_npz(path: Path, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path.name}: not a valid .npz file ({exc})") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise ValueError(f"{path.name}: uncompressed size {total} bytes is more than the "
                             f"limit of {max_bytes}")
        names = [i.filename for i in infos]
        if not names or not all(n.endswith(".npy") for n in names):
            raise ValueError(f"{path.name}: not a numpy .npz archive (members: {names[:5]})")
        try:
            for info in infos:
                with zf.open(info) as member:
                    _check_npy_header(member, info.file_size, f"{path.name}: {info.filename}")
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
            raise ValueError(f"{path.name}: cannot be read as .npz ({exc})") from None
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                out[key] = data[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ValueError(f"{path.name}: contains object (pickled) arrays, which are refused; "
                             "save plain numeric and string arrays") from None
        raise ValueError(f"{path.name}: cannot be read as .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path.name}: cannot be read as .npz ({exc})") from None
    return out


def _parse_floats(cells: list[str]) -> list[float] | None:
    try:
        return [float(c) for c in cells]
    except ValueError:
        return None


def _load_csv(path: Path, expected_dim: int | None, max_points: int
              ) -> tuple[np.ndarray, list[str] | None]:
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path.name}: empty CSV")
    if _parse_floats(rows[0][1:]) is None:  # a header row
        rows = rows[1:]
    if len(rows) > max_points:
        raise ValueError(f"{path.name}: {len(rows)} points is more than the limit of {max_points}")
    if not rows:
        raise ValueError(f"{path.name}: no data rows")
    width = len(rows[0])
    # The first column is an id/label, unless every cell is a number and the row width equals the
    # expected dimension (a bare N x D table).
    has_id = not (expected_dim is not None and width == expected_dim
                  and all(_parse_floats(r) is not None for r in rows))
    names: list[str] | None = [] if has_id else None
    values = []
    for line, r in enumerate(rows, 1):
        if len(r) != width:
            raise ValueError(f"{path.name}: data row {line} has {len(r)} columns, the first has "
                             f"{width}")
        cells = r[1:] if has_id else r
        nums = _parse_floats(cells)
        if nums is None:
            raise ValueError(f"{path.name}: data row {line} has a non-numeric embedding value")
        if names is not None:
            names.append(r[0].strip())
        values.append(nums)
    emb = np.asarray(values, dtype=np.float64)
    if has_id and emb.shape[1] == 0:
        raise ValueError(f"{path.name}: rows need an id/label column and embedding columns")
    return emb, names


def _load_json(path: Path) -> tuple[np.ndarray, dict[str, list[str] | None]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path.name}: invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # bad UTF-8, bad syntax, an integer with thousands of digits
        raise ValueError(f"{path.name}: invalid JSON ({exc})") from None
    if isinstance(data, dict) and "points" in data:
        data = data["points"]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path.name}: expected a non-empty list of "
                         '{"id", "label", "embedding"} objects')
    fields: dict[str, list[str]] = {"id": [], "label": [], "kind": [], "hover": []}
    present = dict.fromkeys(fields, False)
    rows = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "embedding" not in item:
            raise ValueError(f"{path.name}: item {i} must be an object with an 'embedding'")
        vec = np.asarray(item["embedding"]) if isinstance(item["embedding"], list) else None
        if vec is None or vec.ndim != 1 or vec.dtype.kind not in "fiu":
            raise ValueError(f"{path.name}: item {i}: 'embedding' must be a flat list of numbers")
        rows.append(vec)
        for key in fields:
            v = item.get(key)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{path.name}: item {i}: '{key}' must be a string")
            present[key] |= v is not None
            fields[key].append(v if v is not None else "")
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        raise ValueError(f"{path.name}: embeddings have different dimensions: {sorted(dims)[:5]}")
    emb = np.stack(rows).astype(np.float64)
    ids = [v or f"uploaded-{i}" for i, v in enumerate(fields["id"])] if present["id"] else None
    labels = fields["label"] if present["label"] else None
    return emb, {"ids": ids, "labels": labels,
                 "kinds": fields["kind"] if present["kind"] else None,
                 "hovers": fields["hover"] if present["hover"] else None}


def load_embeddings(path: str | Path, *, expected_dim: int | None = None, max_points: int = 5000,
                    max_bytes: int = 50_000_000, kind: str | None = None) -> list[LatentPoint]:
    """Read embeddings from an (untrusted) file.

    Formats, by suffix:
      * ``.npz`` as written by :func:`save_embeddings` (``embeddings`` required; ``ids``,
        ``labels``, ``kinds``, ``hovers`` optional string arrays). Loaded with
        ``allow_pickle=False``; object arrays are refused.
      * ``.npy``: an (N, D) numeric array; ids and labels ``uploaded-0``, ``uploaded-1``, ...
      * ``.csv``: one row per point, first column the id (also used as label), then D numbers;
        an optional header row. A bare all-numeric table is accepted when its width equals
        ``expected_dim``.
      * ``.json``: ``[{"id", "label", "embedding": [...], "kind"?, "hover"?}, ...]`` (or
        ``{"points": [...]}``).

    ``kind`` forces the kind of every point (the app passes "uploaded"); otherwise kinds stored in
    the file are kept when valid and "uploaded" is used for the rest. ``media`` is always None.

    Raises:
        ValueError: missing file, unsupported suffix, file larger than ``max_bytes``, more than
            ``max_points`` points, dimension different from ``expected_dim``, NaN/inf,
            non-numeric data, pickled objects, inconsistent field lengths.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not path.is_file():
        raise ValueError(f"{path.name}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path.name}: file is {size} bytes, more than the limit of {max_bytes}")
    suffix = path.suffix.lower()
    src = path.name
    meta: dict[str, list[str] | None] = {"ids": None, "labels": None, "kinds": None,
                                         "hovers": None}
    if suffix == ".npz":
        arrays = _load_npz(path, max_bytes)
        if "embeddings" not in arrays:
            raise ValueError(f"{src}: no 'embeddings' array (found {sorted(arrays)[:10]})")
        emb = _check_loaded(arrays["embeddings"], source=src, expected_dim=expected_dim,
                            max_points=max_points)
        for key in ("ids", "labels", "kinds", "hovers"):
            meta[key] = _strings(arrays.get(key), len(emb), key, src)
    elif suffix == ".npy":
        with path.open("rb") as fp:
            _check_npy_header(fp, size, src)
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                raise ValueError(f"{src}: contains an object (pickled) array, which is refused"
                                 ) from None
            raise ValueError(f"{src}: cannot be read as .npy ({exc})") from None
        except (OSError, EOFError) as exc:
            raise ValueError(f"{src}: cannot be read as .npy ({exc})") from None
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{src}: not a single .npy array")
        emb = _check_loaded(arr, source=src, expected_dim=expected_dim, max_points=max_points)
    elif suffix == ".csv":
        try:
            raw, meta["ids"] = _load_csv(path, expected_dim, max_points)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{src}: not UTF-8 text ({exc})") from None
        except csv.Error as exc:
            raise ValueError(f"{src}: invalid CSV ({exc})") from None
        emb = _check_loaded(raw, source=src, expected_dim=expected_dim, max_points=max_points)
        if meta["ids"] is not None:
            meta["labels"] = list(meta["ids"])
            meta["ids"] = _unique(meta["ids"])
    elif suffix == ".json":
        raw, meta = _load_json(path)
        emb = _check_loaded(raw, source=src, expected_dim=expected_dim, max_points=max_points)
    else:
        raise ValueError(f"{src}: unsupported file type {suffix or '(none)'!r}; "
                         "use .npz, .npy, .csv or .json")
    return _make_points(emb, meta["ids"], meta["labels"], meta["kinds"], meta["hovers"], kind)


def _unique(names: list[str]) -> list[str]:
    """Keep names that are unique; suffix repeats with '#row' so ids stay distinct."""
    counts: dict[str, int] = {}
    for nme in names:
        counts[nme] = counts.get(nme, 0) + 1
    return [nme if counts[nme] == 1 and nme else f"{nme or 'uploaded'}#{i}"
            for i, nme in enumerate(names)]
