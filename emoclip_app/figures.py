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


TOP_K = (
    12  # classes drawn when "show all" is off (bars; timeline lines shown, others in the legend)
)
HIGHLIGHTED = 5  # timeline classes drawn in full colour; the others are muted


def ranked(probabilities: dict[str, float]) -> list[tuple[str, float]]:
    """(class, probability), most probable first."""
    return sorted(probabilities.items(), key=lambda kv: -kv[1])


def bars_figure(
    probabilities: dict[str, float], compounds: Sequence[str] = (), *, show_all: bool = False
) -> go.Figure:
    """Horizontal probability bars, most probable on top; compounds in another colour.

    At most `TOP_K` bars unless `show_all` (the title says how many are left out); the value
    labels sit beyond the bars and are never clipped (the axis leaves room for them).
    """
    import plotly.graph_objects as go

    top = ranked(probabilities)
    shown = top if show_all else top[:TOP_K]
    items = shown[::-1]  # plotly draws the first bar at the bottom
    comp = set(compounds)
    fig = go.Figure(
        go.Bar(
            x=[p for _, p in items],
            y=[plot_text(n) for n, _ in items],
            orientation="h",
            marker_color=["#C2410C" if n in comp else "#1D5F99" for n, _ in items],
            text=[f"{p:.1%}" for _, p in items],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    hidden = len(top) - len(shown)
    more = f"; top {len(shown)} of {len(top)}" if hidden else ""
    fig = _layout(
        fig,
        title=f"Probabilities (orange: compounds{more})",
        height=max(220, 26 * len(items) + 80),
        xaxis="probability",
        yaxis="",
    )
    fig.update_layout(hovermode="closest", showlegend=False, margin=dict(r=60))
    peak = max((p for _, p in items), default=0.0)
    fig.update_xaxes(range=[0, min(1.0, peak * 1.1 + 0.02)], tickformat=".0%")
    return fig


def bars_summary(probabilities: dict[str, float], k: int = 5) -> str:
    """The bars in words (the plot's text alternative): the `k` most probable classes."""
    top = ranked(probabilities)
    if not top:
        return ""
    cells = ", ".join(f"{n} {p:.1%}" for n, p in top[:k])
    rest = f" (and {len(top) - k} more)" if len(top) > k else ""
    return f"Most probable: {cells}{rest}."


def timeline_figure(
    prediction: Prediction, compounds: Sequence[str] = (), *, show_all: bool = False
) -> go.Figure:
    """One line per class over the window centres, the clip's most probable classes first.

    The `HIGHLIGHTED` top classes are drawn in their colour, the others muted; beyond `TOP_K`
    classes (unless `show_all`) the others are listed in the legend only (a click shows one).
    Compounds dashed; faceless frames marked.
    """
    import plotly.graph_objects as go

    tl = prediction.timeline
    names = prediction.classes
    colours = _colours(names)
    order = [n for n, _ in ranked(prediction.probabilities)]
    order += [n for n in names if n not in order]
    fig = go.Figure()
    centers = tl.centers if len(tl) else np.zeros(0)
    for rank, name in enumerate(order):
        j = names.index(name)
        strong = rank < HIGHLIGHTED
        fig.add_trace(
            go.Scatter(
                x=centers,
                y=tl.probabilities[:, j] if len(tl) else [],
                mode="lines+markers" if len(tl) < 3 else "lines",
                name=plot_text(name),
                opacity=1.0 if strong else 0.35,
                visible=True if show_all or rank < TOP_K else "legendonly",
                line=dict(
                    color=colours[name],
                    width=3.5 if rank == 0 else 2.0 if strong else 1.2,
                    dash="dash" if name in compounds else "solid",
                ),
                hovertemplate="%{y:.1%}",
            )
        )
    _no_face_marks(fig, prediction)
    fig = _layout(
        fig,
        title=f"Timeline ({len(tl)} windows; legend: most probable first)",
        height=340,
        xaxis="time (s): window centre",
        yaxis="probability",
    )
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def _no_face_marks(fig: go.Figure, prediction: Prediction) -> None:
    import plotly.graph_objects as go

    times = prediction.faces.no_face_times
    if times:
        fig.add_trace(
            go.Scatter(
                x=times,
                y=[0.0] * len(times),
                mode="markers",
                name="no face",
                marker=dict(symbol="line-ns-open", size=12, color="#666"),
                hovertemplate="no face at %{x:.1f} s<extra></extra>",
            )
        )


def timeline_summary(prediction: Prediction) -> str:
    """The timeline in words (the plot's text alternative): which class leads how many windows,
    and the top class's peak."""
    tl = prediction.timeline
    if not len(tl):
        return "No timeline: the input is shorter than one window (or a photo)."
    names = prediction.classes
    leaders = np.asarray(tl.probabilities).argmax(axis=1)
    counts = np.bincount(leaders, minlength=len(names))
    lead = ", ".join(
        f"{names[j]} in {counts[j]}" for j in np.argsort(-counts, kind="stable") if counts[j]
    )
    top = prediction.top
    col = np.asarray(tl.probabilities)[:, names.index(top)]
    at = int(col.argmax())
    return (
        f"{len(tl)} windows from {tl.centers[0]:.1f} s to {tl.centers[-1]:.1f} s. "
        f"Leading class per window: {lead}. {top} peaks at {col[at]:.1%} ({tl.centers[at]:.1f} s)."
    )


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
    # the legend starts with the classes the latest prediction ranks first; the rest muted
    order = np.argsort(-arr[-1], kind="stable") if len(arr) else np.arange(len(names))
    data = [
        dict(
            type="scatter",
            x=x,
            y=arr[:, j].tolist(),
            mode="lines",
            name=plot_text(names[j]),
            opacity=1.0 if rank < HIGHLIGHTED else 0.35,
            line=dict(color=colours[names[j]], width=2.5 if rank == 0 else 1.6),
            hovertemplate="%{y:.1%}",
        )
        for rank, j in enumerate(int(j) for j in order)
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


def shown_photo(image: np.ndarray, max_side: int = 1280) -> tuple[np.ndarray, float]:
    """The photo as the page shows it: downsized so its longer side is at most `max_side`.

    Args:
        image: (H, W, 3) uint8 RGB, upright.

    Returns:
        ((H', W', 3) uint8 RGB copy, the scale H' / H).
    """
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1:
        return image.copy(), 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def draw_faces(
    image: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    max_side: int = 1280,
    chosen: int | None = None,
) -> np.ndarray:
    """The photo with a numbered box per face (1 = the first face), downsized to `max_side`.

    Args:
        image: (H, W, 3) uint8 RGB, upright.
        boxes: (x, y, w, h) boxes in pixels of `image`, in the order they are numbered.
        chosen: The index of the face whose result the page shows: its box is drawn twice as
            thick inside a white frame (None: no box is marked).

    Returns:
        (H', W', 3) uint8 RGB copy with the boxes drawn.
    """
    import cv2

    out, scale = shown_photo(image, max_side)
    thick = max(2, round(max(out.shape[:2]) / 400))
    for i, (x, y, bw, bh) in enumerate(boxes):
        colour = FACE_COLOURS[i % len(FACE_COLOURS)]
        p0 = (round(x * scale), round(y * scale))
        p1 = (round((x + bw) * scale), round((y + bh) * scale))
        if i == chosen:
            pad = 2 * thick
            white = (255, 255, 255)
            cv2.rectangle(out, (p0[0] - pad, p0[1] - pad), (p1[0] + pad, p1[1] + pad), white, thick)
        cv2.rectangle(out, p0, p1, colour, 2 * thick if i == chosen else thick)
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
