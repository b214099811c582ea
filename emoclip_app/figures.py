"""Plots (plotly) and the annotated photo. Every text shown in a plot is escaped.

A class has one colour in every plot of the app: the latent explorer's colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import plot_text

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from emoclip.results import Prediction


def _colours(names: Sequence[str]) -> dict[str, str]:
    """The latent explorer's colours, so a class has one colour in every plot of the app."""
    from emoclip.explore import label_colours

    return label_colours(names)


def _layout_fields(*, title: str, height: int, xaxis: str, yaxis: str) -> dict:
    """The layout every plot of the app shares, as plotly ``update_layout`` keywords."""
    return dict(
        title=dict(text=title, x=0.01, font=dict(size=14)),
        height=height,
        margin=dict(l=50, r=10, t=40, b=45),
        template="plotly_white",
        xaxis_title=xaxis,
        yaxis_title=yaxis,
        legend=dict(orientation="v", x=1.01, y=1, yanchor="top", font=dict(size=11)),
        hovermode="x unified",
    )


def _layout(fig: go.Figure, *, title: str, height: int, xaxis: str, yaxis: str) -> go.Figure:
    fig.update_layout(**_layout_fields(title=title, height=height, xaxis=xaxis, yaxis=yaxis))
    return fig


def bars_figure(probabilities: dict[str, float], compounds: Sequence[str] = ()) -> go.Figure:
    """Horizontal probability bars, most probable on top; compounds in another colour."""
    import plotly.graph_objects as go

    items = sorted(probabilities.items(), key=lambda kv: kv[1])
    comp = set(compounds)
    fig = go.Figure(
        go.Bar(
            x=[p for _, p in items],
            y=[plot_text(n) for n, _ in items],
            orientation="h",
            marker_color=["#F58518" if n in comp else "#4C78A8" for n, _ in items],
            text=[f"{p:.1%}" for _, p in items],
            textposition="outside",
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    fig = _layout(
        fig,
        title="Probabilities (orange: compounds)",
        height=max(220, 26 * len(items) + 80),
        xaxis="probability",
        yaxis="",
    )
    fig.update_layout(hovermode="closest", showlegend=False)
    fig.update_xaxes(range=[0, min(1.0, max(p for _, p in items) * 1.25 + 0.02)], tickformat=".0%")
    return fig


def timeline_figure(prediction: Prediction, compounds: Sequence[str] = ()) -> go.Figure:
    """One line per class over the window centres; compounds dashed; faceless frames marked."""
    import plotly.graph_objects as go

    tl = prediction.timeline
    names = prediction.classes
    colours = _colours(names)
    top = prediction.top
    fig = go.Figure()
    centers = tl.centers if len(tl) else np.zeros(0)
    for j, name in enumerate(names):
        fig.add_trace(
            go.Scatter(
                x=centers,
                y=tl.probabilities[:, j] if len(tl) else [],
                mode="lines+markers" if len(tl) < 3 else "lines",
                name=plot_text(name),
                line=dict(
                    color=colours[name],
                    width=3.5 if name == top else 1.6,
                    dash="dash" if name in compounds else "solid",
                ),
                hovertemplate="%{y:.1%}",
            )
        )
    if prediction.faces.no_face_times:
        fig.add_trace(
            go.Scatter(
                x=prediction.faces.no_face_times,
                y=[0.0] * len(prediction.faces.no_face_times),
                mode="markers",
                name="no face",
                marker=dict(symbol="line-ns-open", size=12, color="#888"),
                hovertemplate="no face at %{x:.1f} s<extra></extra>",
            )
        )
    fig = _layout(
        fig,
        title=f"Timeline ({len(tl)} windows)",
        height=340,
        xaxis="time (s): window centre",
        yaxis="probability",
    )
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def live_figure_spec(times: Sequence[float], probs: np.ndarray, names: Sequence[str]) -> dict:
    """The live timeline as a plain plotly figure dict (``data`` and ``layout``).

    Args:
        times: (N,) seconds since the stream started.
        probs: (N, C) probabilities, columns in `names` order.
        names: the C class names (escaped here, as every plot text is).
    """
    colours = _colours(names)
    arr = np.asarray(probs, dtype=np.float64).reshape(len(times), len(names))
    x = [float(t) for t in times]
    data = [
        dict(
            type="scatter",
            x=x,
            y=arr[:, j].tolist(),
            mode="lines",
            name=plot_text(name),
            line=dict(color=colours[name], width=2),
            hovertemplate="%{y:.1%}",
        )
        for j, name in enumerate(names)
    ]
    fields = _layout_fields(
        title="Live timeline", height=340, xaxis="seconds since start", yaxis="probability"
    )
    layout = {k: v for k, v in fields.items() if k not in ("xaxis_title", "yaxis_title")}
    layout["xaxis"] = dict(title=dict(text=fields["xaxis_title"]))
    layout["yaxis"] = dict(title=dict(text=fields["yaxis_title"]), range=[0, 1], tickformat=".0%")
    return dict(data=data, layout=layout)


def live_figure(times: Sequence[float], probs: np.ndarray, names: Sequence[str]) -> go.Figure:
    """The live prediction history: one line per class over seconds since the stream started.

    Built on every webcam frame, so it skips plotly's per-property validation (about 6x faster:
    the validated figure cost as much as encoding the frame). The figure is the same: a test
    checks that its JSON equals the validated construction of `live_figure_spec`.
    """
    import plotly.graph_objects as go
    import plotly.io as pio

    spec = live_figure_spec(times, probs, names)
    spec["layout"]["template"] = pio.templates[spec["layout"]["template"]]
    return go.Figure(spec, _validate=False)


FACE_COLOURS = (
    (230, 57, 70),
    (29, 120, 200),
    (42, 157, 80),
    (240, 160, 30),
    (140, 80, 200),
    (20, 170, 170),
)


def draw_faces(
    image: np.ndarray, boxes: Sequence[tuple[float, float, float, float]], max_side: int = 1280
) -> np.ndarray:
    """The photo with a numbered box per face (1 = the largest), downsized to `max_side`.

    Args:
        image: (H, W, 3) uint8 RGB, upright.
        boxes: (x, y, w, h) boxes in pixels of `image`, in the order they are numbered.

    Returns:
        (H', W', 3) uint8 RGB copy with the boxes drawn.
    """
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    out = (
        cv2.resize(
            image,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
        if scale < 1
        else image.copy()
    )
    thick = max(2, round(max(out.shape[:2]) / 400))
    for i, (x, y, bw, bh) in enumerate(boxes):
        colour = FACE_COLOURS[i % len(FACE_COLOURS)]
        p0 = (round(x * scale), round(y * scale))
        p1 = (round((x + bw) * scale), round((y + bh) * scale))
        cv2.rectangle(out, p0, p1, colour, thick)
        label = str(i + 1)
        font = max(0.6, (p1[0] - p0[0]) / 120)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        top = max(0, p0[1] - th - base - 4)
        cv2.rectangle(out, (p0[0], top), (p0[0] + tw + 8, top + th + base + 4), colour, -1)
        cv2.putText(
            out,
            label,
            (p0[0] + 4, top + th + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font,
            (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )
    return out
