"""The compound builder of the Classes & compounds tab: a compound is the normalised
(weighted) mean of its classes' text embeddings; the preview shows its nearest classes and its
score on the current video before it is added."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr

from emoclip.classes import ClassSetError, parse_weights

from ..errors import error, info, md, no_dead_end
from ..models import classes_of, model_of, predictor
from ..outputs import ClassChange, CompoundAdded, components
from ..settings import CLASS_LIMITS
from ..state import Session
from .classes import apply_classes, named, remove_named

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.zeroshot import CompoundPreview


def layout(ui: Any) -> None:
    """The current video's scores and the compound builder, added to `ui`."""
    gr.Markdown("### Current video")
    ui.classes_label = gr.Label(
        label="Scores with these classes (all classes and compounds)", elem_id="classes-label"
    )
    ui.rescore = gr.Markdown(elem_id="rescore-info")
    gr.Markdown(
        "### Compound builder\n"
        "A compound is the normalised (weighted) mean of its classes' text embeddings."
    )
    ui.parts = gr.CheckboxGroup(
        label="Classes to combine (2 or more)", choices=[], elem_id="compound-parts"
    )
    with gr.Row():
        ui.weights = gr.Textbox(
            label="Weights (optional, one per class in order)",
            placeholder="e.g. 2, 1",
            elem_id="compound-weights",
        )
        ui.compound_name = gr.Textbox(
            label="Name", placeholder="e.g. happily surprised", elem_id="compound-name"
        )
    ui.preview = gr.Markdown(
        "Choose two or more classes to preview a compound.", elem_id="compound-preview"
    )
    ui.add_compound_btn = gr.Button("Add compound", variant="primary", elem_id="add-compound-btn")
    with gr.Row():
        ui.compound_pick = gr.Dropdown(label="Compound", choices=[], elem_id="compound-pick")
        ui.remove_compound_btn = gr.Button(
            "Remove compound", variant="stop", scale=0, elem_id="remove-compound-btn"
        )


def wire(ui: Any) -> None:
    """The builder's events: preview as the user types, add, remove."""
    compound = [ui.parts, ui.weights, ui.compound_name, ui.session]
    gr.on(
        [ui.parts.input, ui.weights.input, ui.compound_name.input],
        preview_compound,
        compound,
        [ui.preview],
        api_name="preview_compound",
        show_progress="hidden",
        trigger_mode="always_last",
    )
    ui.add_compound_btn.click(
        no_dead_end(add_compound, CompoundAdded),
        compound,
        components(ui, CompoundAdded),
        api_name="add_compound",
    )
    ui.remove_compound_btn.click(
        no_dead_end(remove_compound, ClassChange),
        [ui.compound_pick, ui.session],
        components(ui, ClassChange),
        api_name="remove_compound",
    )


def preview_markdown(
    name: str, preview: CompoundPreview, weights: Sequence[float] | None, parts: Sequence[str]
) -> str:
    """The compound builder's preview."""
    if weights:
        total = sum(weights)
        mix = " + ".join(f"{w / total:.2f}×{md(p)}" for p, w in zip(parts, weights))
    else:
        mix = " + ".join(md(p) for p in parts) + " (equal weights)"
    lines = [f"**{md(name)}** = {mix}", "", "Nearest classes (cosine of text embeddings):"]
    lines += [f"{i}. {md(c)}: {cos:.3f}" for i, (c, cos) in enumerate(preview.nearest[:5], 1)]
    if preview.probability is None:
        lines.append("\nAnalyse a video to see this compound's score on it.")
    else:
        lines.append(
            f"\n**Score on the current video: {preview.probability:.1%}** "
            f"(rank {preview.rank} of {preview.of})"
        )
    return "\n".join(lines)


def _compound_candidate(parts: list[str] | None, weights_text: str, name: str, session: Session):
    parts = list(parts or [])
    if len(parts) < 2:
        raise ClassSetError("choose two or more classes")
    try:
        weights = parse_weights(weights_text, parts)
    except ValueError as exc:
        raise ClassSetError(str(exc)) from exc
    name = (name or "").strip() or " + ".join(parts)
    classes = classes_of(session)
    candidate = classes.with_compound(name, parts, weights, limits=CLASS_LIMITS)
    return classes, candidate, name, weights, parts


def preview_compound(
    parts: list[str] | None, weights_text: str, name: str, session: Session
) -> str:
    """Preview a compound: its nearest classes and its score on the current video."""
    if len(parts or []) < 2:
        return "Choose two or more classes to preview a compound."
    from emoclip.zeroshot import compound_preview

    try:
        current, candidate, name, weights, parts = _compound_candidate(
            parts, weights_text, name, session
        )
    except ClassSetError as exc:
        return f"**Cannot build it:** {md(exc)}"
    replaces = named(current.compounds, name)
    video = session.video
    model = video.model if video is not None else model_of(session)
    pred = predictor(model, video.fallback if video else "center")
    name = next(c.name for c in candidate.compounds if c.name.casefold() == name.strip().casefold())
    encoding = video.encoding if video else None
    preview = compound_preview(pred, candidate, name, encoding)
    text = preview_markdown(name, preview, weights, parts)
    if replaces is not None:
        text += f"\n\n*Adding it replaces the existing compound {md(replaces)}.*"
    return text


def add_compound(
    parts: list[str] | None, weights_text: str, name: str, session: Session
) -> CompoundAdded:
    """Add the compound (or replace the one of that name) and re-score."""
    try:
        current, candidate, name, _, _ = _compound_candidate(parts, weights_text, name, session)
    except ClassSetError as exc:
        raise error(exc) from exc
    replaced = named(current.compounds, name)
    if replaced is not None:
        info(f"Replaced the existing compound '{replaced}'")
    done = "Replaced" if replaced is not None else "Added"
    return CompoundAdded(
        *apply_classes(session, candidate), preview=f"{done} compound **{md(name)}**."
    )


def remove_compound(name: str, session: Session) -> ClassChange:
    """Remove a compound."""
    return remove_named(name, session, "there is no compound to remove")
