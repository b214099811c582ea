"""Latent explorer: 2-D projections of clip and prototype embeddings, plotly figures, file I/O.

numpy in, numpy / plotly out. scikit-learn, umap-learn and plotly are imported inside the functions
that need them, so importing this module costs nothing beyond numpy (``import umap`` alone takes
seconds and its first fit in a process ~14 s of numba JIT).

    pts = [LatentPoint("a.mp4", "clip", "happy", emb_a, hover="happy 0.81"), ...]
    xy = project(np.stack([p.embedding for p in pts]), "tsne", seed=0)
    fig = latent_figure(pts, xy, title="t-SNE")

Embeddings are L2-normalised before projecting, so Euclidean distances in the projections' input
are monotone in cosine similarity, the similarity the model scores with.

Modules: `points` (LatentPoint), `projection` (project, nearest_neighbours), `figure`
(latent_figure), `files` (save/load; loading is for untrusted uploads) and `collection` (batch
results folders of tens of thousands of clips: sampled projections, a neighbour index).
"""

from __future__ import annotations

from emoclip.explore.collection import (
    Collection,
    NeighbourIndex,
    load_results_folder,
    project_large,
)
from emoclip.explore.figure import label_colours, latent_figure
from emoclip.explore.files import load_embeddings, save_embeddings
from emoclip.explore.points import (
    KINDS,
    PROTOTYPE_KINDS,
    ClipSource,
    LatentPoint,
    latent_points,
    stack_embeddings,
)
from emoclip.explore.projection import METHODS, nearest_neighbours, project

__all__ = [
    "ClipSource",
    "Collection",
    "KINDS",
    "NeighbourIndex",
    "METHODS",
    "PROTOTYPE_KINDS",
    "LatentPoint",
    "label_colours",
    "latent_figure",
    "latent_points",
    "load_embeddings",
    "load_results_folder",
    "nearest_neighbours",
    "project",
    "project_large",
    "save_embeddings",
    "stack_embeddings",
]
