"""The Classes & compounds tab: the class editor (table, YAML/JSON) and the compound builder.

Every change makes a new validated `ClassSet` for the session and re-scores the current video
without re-encoding it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr

from emoclip.classes import (
    ClassSet,
    ClassSetError,
    class_rows,
    classes_from_rows,
    parse_weights,
    preset,
    preset_names,
)

from .. import files
from ..errors import error, md, warning
from ..evidence_view import class_check_layout, wire_class_check
from ..files import safe_stem
from ..models import classes_of, model_of, predictor
from ..outputs import (
    EDITOR,
    ClassAdded,
    ClassChange,
    ClassRenamed,
    CompoundAdded,
    components,
    skipped,
)
from ..settings import CLASS_LIMITS, MODEL_DEFAULT_PRESET
from ..state import Session
from .analyse import result_values, warnings_markdown

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.zeroshot import CompoundPreview

# ---------------------------------------------------------------------------------- layout


def layout(ui: Any) -> None:
    """The tab's components, added to `ui`: the editor on the left, the builder on the right."""
    with gr.Row():
        with gr.Column(scale=3):
            _editor(ui)
        with gr.Column(scale=2):
            class_check_layout(ui)
            _compound_builder(ui)


def _editor(ui: Any) -> None:
    with gr.Row():
        ui.preset = gr.Dropdown(
            [MODEL_DEFAULT_PRESET, *preset_names()],
            value=MODEL_DEFAULT_PRESET,
            label="Preset",
            elem_id="preset",
        )
        ui.reset_btn = gr.Button("Reset to preset", elem_id="reset-classes-btn", scale=0)
    ui.message = gr.Markdown(elem_id="class-messages")
    ui.table = gr.Dataframe(
        headers=["class", "description"],
        datatype=["str", "str"],
        column_count=2,
        interactive=True,
        wrap=True,
        max_height=420,
        column_widths=["22%", "78%"],
        label="Classes: one row per description (edit a cell, add rows)",
        elem_id="class-table",
    )
    with gr.Accordion("Add, rename or remove a class", open=True):
        with gr.Row():
            ui.new_name = gr.Textbox(label="New class name", elem_id="new-class-name")
            ui.new_desc = gr.Textbox(
                label="Descriptions (one per line)", lines=2, scale=2, elem_id="new-class-desc"
            )
            ui.add_class_btn = gr.Button("Add class", elem_id="add-class-btn", scale=0)
        with gr.Row():
            ui.class_pick = gr.Dropdown(label="Class", choices=[], elem_id="class-pick")
            ui.rename_to = gr.Textbox(label="Rename to", elem_id="rename-to")
            ui.rename_btn = gr.Button("Rename", elem_id="rename-btn", scale=0)
            ui.remove_btn = gr.Button("Remove", variant="stop", elem_id="remove-btn", scale=0)
    with gr.Accordion("YAML / JSON: edit, import, export", open=False):
        ui.yaml = gr.Code(
            language="yaml",
            label="Class set (YAML or JSON)",
            interactive=True,
            elem_id="class-yaml",
            lines=12,
        )
        with gr.Row():
            ui.apply_yaml_btn = gr.Button(
                "Apply YAML/JSON", variant="primary", elem_id="apply-yaml-btn"
            )
            ui.export_yaml_btn = gr.Button("Export YAML", elem_id="export-yaml-btn")
            ui.export_json_btn = gr.Button("Export JSON", elem_id="export-json-btn")
        with gr.Row():
            ui.import_file = gr.File(
                label="Import a .yaml/.yml/.json class set",
                type="filepath",
                file_types=[".yaml", ".yml", ".json"],
                height=120,
                elem_id="import-classes",
            )
            ui.export_file = gr.File(
                label="Exported class set", interactive=False, height=120, elem_id="export-classes"
            )


def _compound_builder(ui: Any) -> None:
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
    """The tab's events; every class-set change updates the editors and the current result."""
    change = components(ui, ClassChange)
    ui.reset_btn.click(reset_classes, [ui.preset, ui.session], change, api_name="reset_classes")
    ui.table.input(
        edit_table,
        [ui.table, ui.session],
        change,
        api_name="edit_classes_table",
        trigger_mode="always_last",
    )
    ui.add_class_btn.click(
        add_class,
        [ui.new_name, ui.new_desc, ui.session],
        components(ui, ClassAdded),
        api_name="add_class",
    )
    ui.rename_btn.click(
        rename_class,
        [ui.class_pick, ui.rename_to, ui.session],
        components(ui, ClassRenamed),
        api_name="rename_class",
    )
    ui.remove_btn.click(remove_class, [ui.class_pick, ui.session], change, api_name="remove_class")
    ui.yaml.input(
        validate_classes,
        [ui.yaml, ui.session],
        [ui.message],
        api_name="validate_classes",
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_limit=None,
    )
    ui.apply_yaml_btn.click(set_classes, [ui.yaml, ui.session], change, api_name="set_classes")
    ui.import_file.upload(
        import_classes, [ui.import_file, ui.session], change, api_name="import_classes"
    )
    ui.export_yaml_btn.click(
        functools.partial(export_classes, "yaml"),
        [ui.session],
        [ui.export_file],
        api_name="export_classes_yaml",
    )
    ui.export_json_btn.click(
        functools.partial(export_classes, "json"),
        [ui.session],
        [ui.export_file],
        api_name="export_classes_json",
    )

    wire_class_check(ui)
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
        add_compound, compound, components(ui, CompoundAdded), api_name="add_compound"
    )
    ui.remove_compound_btn.click(
        remove_compound, [ui.compound_pick, ui.session], change, api_name="remove_compound"
    )


# ---------------------------------------------------------------------------- editor values


def editor_values(classes: ClassSet, message: str) -> dict[str, Any]:
    """Values of the EDITOR components showing `classes`, by component name."""
    classes_only = [c.name for c in classes.classes]
    compounds = [c.name for c in classes.compounds]
    return dict(
        table=class_rows(classes),
        yaml=classes.to_yaml(),
        message=message,
        class_pick=gr.Dropdown(
            choices=classes_only, value=classes_only[0] if classes_only else None
        ),
        parts=gr.CheckboxGroup(choices=classes_only, value=[]),
        compound_pick=gr.Dropdown(choices=compounds, value=compounds[0] if compounds else None),
    )


def editor_for(session: Session) -> dict[str, Any]:
    """EDITOR values showing the session's current class set and its validation."""
    classes = classes_of(session)
    message = classes_message(classes, classes.validate(CLASS_LIMITS))
    return editor_values(classes, message)


def editor_skipped() -> dict[str, Any]:
    """EDITOR values leaving every editor component as it is."""
    return {name: gr.skip() for name in EDITOR}


def apply_classes(session: Session, classes: ClassSet) -> ClassChange:
    """Make `classes` the session's set, re-score the current video (no re-encoding), render."""
    warnings = classes.validate(CLASS_LIMITS)
    session.classes = classes
    video = session.video
    if video is not None:
        pred = predictor(video.model, video.fallback)
        video.prediction = pred.score(video.encoding, classes)
        session.rescored += 1
    return ClassChange(
        **editor_values(classes, classes_message(classes, warnings)),
        **result_values(session)._asdict(),
    )


def classes_message(classes: ClassSet, warnings: Sequence[str], error: str | None = None) -> str:
    """Validation line of the class editor."""
    if error:
        return (
            f"**Not applied:** {md(error)}  \n"
            "Fix the text above; the last valid class set is still in use."
        )
    head = (
        f"In use: {len(classes.classes)} classes, {len(classes.compounds)} compounds "
        f"({len(classes.texts)} descriptions) in set *{md(classes.name)}*"
    )
    return head + ("\n" + warnings_markdown(warnings) if warnings else "")


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


# ---------------------------------------------------------------------------------- handlers


def reset_classes(preset_name: str, session: Session) -> ClassChange:
    """Reset the class set to a preset (or to the model's default)."""
    try:
        if not preset_name or preset_name == MODEL_DEFAULT_PRESET:
            classes = predictor(model_of(session)).default_classes()
        else:
            classes = preset(preset_name)
    except ClassSetError as exc:
        raise error(exc) from exc
    return apply_classes(session, classes)


def edit_table(rows: Any, session: Session) -> ClassChange:
    """A cell of the class table was edited: rebuild the set from the rows (keeping compounds).

    A failed edit changes only the message (the editors keep their text).
    """
    try:
        classes = classes_from_rows(rows, classes_of(session), CLASS_LIMITS)
    except ClassSetError as exc:
        warning(str(exc))
        message = classes_message(classes_of(session), [], error=str(exc))
        return skipped(ClassChange, message=message)
    if classes == classes_of(session):  # e.g. the same cell committed twice (Enter, then blur)
        message = classes_message(classes, classes.validate(CLASS_LIMITS))
        return skipped(ClassChange, message=message)
    return apply_classes(session, classes)


def add_class(name: str, descriptions: str, session: Session) -> ClassAdded:
    """Add a class (or replace an existing class's descriptions); one description per line."""
    texts = [t.strip() for t in (descriptions or "").splitlines() if t.strip()]
    if not (name or "").strip():
        raise error("type a class name")
    if not texts:
        raise error("type at least one description (one per line)")
    try:
        classes = classes_of(session).with_class(name, texts, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise error(exc) from exc
    return ClassAdded(*apply_classes(session, classes), new_name="", new_desc="")


def rename_class(old: str, new: str, session: Session) -> ClassRenamed:
    """Rename a class or compound (compounds follow)."""
    if not old:
        raise error("choose the class to rename")
    if not (new or "").strip():
        raise error("type the new name")
    try:
        classes = classes_of(session).renamed(old, new, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise error(exc) from exc
    return ClassRenamed(*apply_classes(session, classes), rename_to="")


def remove_class(name: str, session: Session) -> ClassChange:
    """Remove a class (and the compounds that use it)."""
    return _remove(name, session, "choose the class to remove")


def _remove(name: str, session: Session, missing: str) -> ClassChange:
    """Remove a class or compound by name and re-score; `missing` is the error for no name."""
    if not name:
        raise error(missing)
    return _apply_built(session, lambda: classes_of(session).without(name, limits=CLASS_LIMITS))


def _apply_built(session: Session, build: Callable[[], ClassSet]) -> ClassChange:
    """Apply the class set `build()` makes; its ClassSetError becomes the user's error message."""
    try:
        classes = build()
    except ClassSetError as exc:
        raise error(exc) from exc
    return apply_classes(session, classes)


def validate_classes(text: str, session: Session) -> str:
    """Live validation of the YAML/JSON editor (nothing is applied)."""
    if not (text or "").strip():
        return "Type a class set (YAML or JSON), or reset to a preset."
    try:
        classes = ClassSet.parse(text, limits=CLASS_LIMITS)
        warnings = classes.validate(CLASS_LIMITS)
    except ClassSetError as exc:
        return classes_message(classes_of(session), [], error=str(exc))
    valid = "Valid (press *Apply YAML/JSON* to use it):"
    return classes_message(classes, warnings).replace("In use:", valid, 1)


def set_classes(text: str, session: Session) -> ClassChange:
    """Apply the YAML/JSON editor's class set."""
    if not (text or "").strip():
        raise error("the class set is empty: type YAML or JSON, or reset to a preset")
    return _apply_built(session, lambda: ClassSet.parse(text, limits=CLASS_LIMITS))


def import_classes(file: str | None, session: Session) -> ClassChange:
    """Load a class set from an uploaded .yaml/.yml/.json file."""
    if not file:
        raise error("choose a .yaml, .yml or .json file")
    return _apply_built(session, lambda: ClassSet.load(file, limits=CLASS_LIMITS))


def export_classes(fmt: str, session: Session) -> str:
    """Write the session's class set as YAML or JSON for download."""
    classes = classes_of(session)
    suffix = "json" if fmt == "json" else "yaml"
    path = files.OUTPUTS.new() / f"{safe_stem(classes.name, 'classes')}.{suffix}"
    try:
        classes.save(path, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise error(exc) from exc
    return str(path)


# ---------------------------------------------------------------------------------- compounds


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
        _, candidate, name, weights, parts = _compound_candidate(parts, weights_text, name, session)
    except ClassSetError as exc:
        return f"**Cannot build it:** {md(exc)}"
    video = session.video
    model = video.model if video is not None else model_of(session)
    pred = predictor(model, video.fallback if video else "center")
    name = next(c.name for c in candidate.compounds if c.name.casefold() == name.strip().casefold())
    encoding = video.encoding if video else None
    preview = compound_preview(pred, candidate, name, encoding)
    return preview_markdown(name, preview, weights, parts)


def add_compound(
    parts: list[str] | None, weights_text: str, name: str, session: Session
) -> CompoundAdded:
    """Add the compound (or replace the one of that name) and re-score."""
    try:
        _, candidate, name, _, _ = _compound_candidate(parts, weights_text, name, session)
    except ClassSetError as exc:
        raise error(exc) from exc
    return CompoundAdded(
        *apply_classes(session, candidate), preview=f"Added compound **{md(name)}**."
    )


def remove_compound(name: str, session: Session) -> ClassChange:
    """Remove a compound."""
    return _remove(name, session, "there is no compound to remove")
