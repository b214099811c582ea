"""The latent explorer's plotly scatter (plotly imported inside :func:`latent_figure`)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from emoclip.explore.points import (
    KINDS,
    MAX_HOVER_CHARS,
    MAX_ID_CHARS,
    PROTOTYPE_KINDS,
    LatentPoint,
)

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

_KIND_SYMBOL = {
    "clip": "circle",
    "example": "square",
    "uploaded": "triangle-up",
    "class": "diamond",
    "compound": "star",
}
_KIND_TITLE = {
    "clip": "session clips",
    "example": "example clips",
    "uploaded": "uploaded",
    "class": "class prototypes",
    "compound": "compound prototypes",
}
# D3 category10, then category20b/20c hues: distinct for the 11 MAFW classes and the compounds.
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
    "#9c9ede",
    "#cedb9c",
    "#e7cb94",
    "#e7969c",
    "#de9ed6",
    "#6baed6",
    "#fd8d3c",
    "#74c476",
    "#9e9ac8",
    "#969696",
)


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per distinct label: sorted labels take the palette in order (cycled past 30)."""
    return {lab: _PALETTE[i % len(_PALETTE)] for i, lab in enumerate(sorted(set(labels)))}


def _esc(text: str, limit: int) -> str:
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>")


def _checked(coords: np.ndarray, n: int, selected: int | None) -> tuple[np.ndarray, int | None]:
    """``coords`` as an (n, 2) float64 array and ``selected`` as an index; clear errors else."""
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
    return xy, selected


_HOVER = (
    "<b>%{customdata[1]}</b><br>%{customdata[2]} · %{customdata[3]}"
    "<br>%{customdata[4]}<extra></extra>"
)


def _group_trace(
    points: Sequence[LatentPoint],
    xy: np.ndarray,
    idx: list[int],
    colour: str,
    clip_marker: dict[str, Any],
    selected: int | None,
) -> go.Scatter:
    """The trace of one (kind, label) group: the points ``idx`` of ``points`` at ``xy[idx]``."""
    import plotly.graph_objects as go

    kind, label = points[idx[0]].kind, points[idx[0]].label
    proto = kind in PROTOTYPE_KINDS
    custom = np.empty((len(idx), 5), dtype=object)
    for r, i in enumerate(idx):
        p = points[i]
        custom[r] = [
            i,
            _esc(p.id, MAX_ID_CHARS),
            kind,
            _esc(p.label, MAX_ID_CHARS),
            _esc(p.hover, MAX_HOVER_CHARS),
        ]
    marker: dict[str, Any] = dict(symbol=_KIND_SYMBOL[kind], color=colour)
    if proto:
        marker.update(
            size=16 if kind == "class" else 18, opacity=1.0, line=dict(color="#222222", width=1.5)
        )
    else:
        marker.update(clip_marker)
    trace = go.Scatter(
        x=xy[idx, 0],
        y=xy[idx, 1],
        mode="markers+text" if proto else "markers",
        name=_esc(label, 60),
        legendgroup=kind,
        legendgrouptitle_text=_KIND_TITLE[kind],
        marker=marker,
        customdata=custom,
        hovertemplate=_HOVER,
        meta={"kind": kind, "label": label},
    )
    if proto:
        trace.update(
            text=[_esc(points[i].label, 60) for i in idx],
            textposition="top center",
            textfont=dict(size=12, color="#111111"),
            cliponaxis=False,
        )
    if selected is not None:
        trace.update(
            selectedpoints=[r for r, i in enumerate(idx) if i == selected],
            selected=dict(marker=dict(opacity=1.0)),
            unselected=dict(marker=dict(opacity=0.25)),
        )
    return trace


def _point_at(fig: go.Figure, xy: np.ndarray, point: LatentPoint, index: int) -> None:
    """An arrow with the point's id at ``xy[index]`` (the selected point)."""
    fig.add_annotation(
        x=xy[index, 0],
        y=xy[index, 1],
        text=_esc(point.id, 60),
        showarrow=True,
        arrowhead=2,
        arrowwidth=2,
        arrowcolor="#000000",
        ax=40,
        ay=-40,
        bgcolor="rgba(255,255,255,0.85)",
        bordercolor="#000000",
        borderwidth=1,
    )


def _style(fig: go.Figure, title: str, n: int, selected: int | None) -> None:
    """Title, legend, margins and bare equal-scale axes (a projection's axes have no units)."""
    fig.update_layout(
        title=dict(text=_esc(title, 200)) if title else None,
        template="plotly_white",
        hovermode="closest",
        dragmode="zoom",
        legend=dict(itemsizing="constant", groupclick="toggleitem", tracegroupgap=8),
        margin=dict(l=20, r=20, t=60 if title else 30, b=20),
        height=640,
        xaxis=dict(showticklabels=False, zeroline=False, showgrid=False, title=None),
        yaxis=dict(
            showticklabels=False,
            zeroline=False,
            showgrid=False,
            title=None,
            scaleanchor="x",
            scaleratio=1,
        ),
        meta={"n_points": n, "selected": selected},
    )


def latent_figure(
    points: Sequence[LatentPoint],
    coords: np.ndarray,
    *,
    title: str = "",
    selected: int | None = None,
) -> go.Figure:
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
    xy, selected = _checked(coords, n, selected)
    colours = label_colours([p.label for p in points])
    n_clips = sum(not p.is_prototype for p in points)
    clip_marker = dict(
        size=9 if n_clips <= 200 else 7 if n_clips <= 1000 else 5,
        opacity=0.85 if n_clips <= 200 else 0.7,
        line=dict(color="white", width=0.5),
    )
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault((p.kind, p.label), []).append(i)
    fig = go.Figure()
    for kind, label in sorted(groups, key=lambda kl: (KINDS.index(kl[0]), kl[1])):
        idx = groups[(kind, label)]
        fig.add_trace(_group_trace(points, xy, idx, colours[label], clip_marker, selected))
    if selected is not None:
        _point_at(fig, xy, points[selected], selected)
    _style(fig, title, n, selected)
    return fig
