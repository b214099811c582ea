"""Evidence in the app: key moments marked (with their crops) on the timeline, the best-matching
description and the "uncertain" flag under the label, and the class-set check (similarity
heatmap and warnings) beside the class editor. Small functions; the tabs call them."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import md, plot_text

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from emoclip.evidence.classcheck import ClassCheck
    from emoclip.results import Prediction

SUPPORT, AGAINST = "#2CA02C", "#D62728"  # key moments; the moment arguing for the runner-up


def evidence_markdown(prediction: Prediction) -> str:
    """The best-matching description of the top class, the margin and the uncertain flag, and the
    key moments in words (escaped); empty without evidence."""
    e = prediction.evidence
    if e is None:
        return ""
    lines = []
    best = e.best_description(e.top)
    if best is not None:
        lines.append(f"**Best-matching description:** “{md(best)}”")
    if e.runner_up is not None:
        flag = "⚠ **uncertain**" if e.uncertain else "clear"
        lines.append(
            f"{md(e.top)} is {100 * e.margin:.1f} points ahead of {md(e.runner_up)}: {flag} "
            f"(uncertain below {100 * e.uncertain_below:.0f} points)"
        )
    if e.no_moments:
        lines.append(md(e.no_moments[0].upper() + e.no_moments[1:]) + ".")
    elif e.key_moments:
        times = ", ".join(
            f"{e.moments[i].time:.1f} s (−{100 * e.moments[i].drop:.1f} pts)" for i in e.key_moments
        )
        lines.append(f"**Key moments** (green on the timeline): {times}")
    else:
        lines.append(
            "No single frame supports the answer on its own: removing any one does not lower it."
        )
    if e.against is not None and e.runner_up is not None:
        m = e.moments[e.against]
        lines.append(
            f"**Argues most for {md(e.runner_up)}** (red on the timeline): {m.time:.1f} s "
            f"(−{100 * m.runner_up_drop:.1f} pts for it)"
        )
    return '<div id="evidence-summary">\n\n' + "  \n".join(lines) + "\n\n</div>"


def mark_key_moments(fig: go.Figure, prediction: Prediction, thumbnails: list) -> go.Figure:
    """`fig` (the timeline) with the key moments shaded green and the moment arguing for the
    runner-up red, each with its crop above the plot (`thumbnails`: the encoding's (time, crop))."""
    import plotly.graph_objects as go

    e = prediction.evidence
    if e is None or not e.moments:
        return fig
    marks = [(i, f"key moment {n + 1}", SUPPORT) for n, i in enumerate(e.key_moments)]
    if e.against is not None:
        marks.append((e.against, f"for {e.runner_up}", AGAINST))
    for i, _, colour in marks:
        m = e.moments[i]
        fig.add_vrect(x0=m.start, x1=m.end, fillcolor=colour, opacity=0.12, line_width=0)
        if 0 <= m.thumbnail < len(thumbnails):
            fig.add_layout_image(
                source=_data_uri(thumbnails[m.thumbnail][1]),
                x=m.time,
                y=1.02,
                xref="x",
                yref="paper",
                sizex=max(m.end - m.start, 0.3),
                sizey=0.22,
                xanchor="center",
                yanchor="bottom",
                layer="above",
            )
    fig.add_trace(
        go.Scatter(
            x=[e.moments[i].time for i, _, _ in marks],
            y=[0.98] * len(marks),
            mode="markers",
            name="key moments",
            marker=dict(symbol="triangle-down", size=13, color=[c for _, _, c in marks]),
            text=[plot_text(label) for _, label, _ in marks],
            customdata=[
                100 * (e.moments[i].drop if c == SUPPORT else e.moments[i].runner_up_drop)
                for i, _, c in marks
            ],
            hovertemplate="%{text}: −%{customdata:.1f} pts without it<extra></extra>",
        )
    )
    fig.update_layout(margin=dict(t=110), height=(fig.layout.height or 340) + 70)
    return fig


def check_figure(report: ClassCheck) -> go.Figure:
    """The class embeddings' pairwise similarity as a heatmap; flagged pairs outlined."""
    import plotly.graph_objects as go

    names = [plot_text(n) for n in report.names]
    fig = go.Figure(
        go.Heatmap(
            z=np.round(report.similarity, 3),
            x=names,
            y=names,
            zmin=-1,
            zmax=1,
            colorscale="RdBu_r",
            hovertemplate="%{y} · %{x}: %{z:.2f}<extra></extra>",
        )
    )
    index = {n: k for k, n in enumerate(report.names)}
    for a, b, _ in report.close_pairs:
        for i, j in ((index[a], index[b]), (index[b], index[a])):
            fig.add_shape(
                type="rect",
                x0=j - 0.5,
                x1=j + 0.5,
                y0=i - 0.5,
                y1=i + 0.5,
                line=dict(color="#000", width=2),
            )
    flagged = (
        "no threshold: not calibrated"
        if report.threshold is None
        else f"pairs from {report.threshold:.2f} flagged"
    )
    fig.update_layout(
        title=dict(text=f"How alike the classes embed ({flagged})", font_size=13),
        height=max(260, 22 * len(names) + 120),
        margin=dict(l=10, r=10, t=40, b=10),
        template="plotly_white",
        yaxis=dict(autorange="reversed"),
    )
    return fig


def check_markdown(report: ClassCheck) -> str:
    """The check's errors and warnings, one escaped line each, or a line saying all is well."""
    lines = [f"- ✖ {md(e)}" for e in report.errors] + [f"- ⚠ {md(w)}" for w in report.warnings]
    if not lines:
        return "No two classes are close enough to confuse this model; no description is cut."
    return "\n".join(lines)


def class_check_layout(ui: Any) -> None:
    """The check's heatmap and warnings (`ui.check_plot`, `ui.check_text`), added to `ui`."""
    import gradio as gr

    with gr.Accordion("Can the model tell these classes apart?", open=True):
        ui.check_text = gr.Markdown(elem_id="class-check")
        ui.check_plot = gr.Plot(label="Class similarity", elem_id="class-check-plot")


def wire_class_check(ui: Any) -> None:
    """Re-check whenever the YAML editor changes: as the user types, and when an edit, a preset or
    an import rewrites it."""
    ui.yaml.change(
        check_view,
        [ui.yaml, ui.session],
        [ui.check_plot, ui.check_text],
        api_name="check_classes",
        show_progress="hidden",
        trigger_mode="always_last",
    )


def check_view(text: str, session: Any) -> tuple[Any, str]:
    """The class-set check of the editor's text against the session's model."""
    from .models import model_of, predictor
    from .settings import CLASS_LIMITS

    if not (text or "").strip():
        return None, "Type a class set to check it."
    try:
        return run_check(text, predictor(model_of(session)), CLASS_LIMITS)
    except Exception as exc:  # a check never breaks the editor: say why it could not run
        return None, f"The class-set check could not run: {md(exc)}"


def run_check(text: str, predictor: Any, limits: Any) -> tuple[go.Figure | None, str]:
    """Parse the editor's `text` and check it with `predictor`'s model: (heatmap or None, text)."""
    from emoclip.classes import ClassSet, ClassSetError
    from emoclip.evidence.classcheck import check_classes

    try:
        classes = ClassSet.parse(text, limits=limits)
    except ClassSetError as exc:
        return None, "\n".join(f"- ✖ {md(p)}" for p in exc.problems)
    report = check_classes(
        classes,
        predictor.parts.text_cache.embed,
        predictor.class_embeddings(classes),
        predictor.model.context_length,
    )
    return check_figure(report), check_markdown(report)


def _data_uri(image: np.ndarray) -> str:
    """A small RGB crop as a PNG data URI (a layout image of the timeline)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
