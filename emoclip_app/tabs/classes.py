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
    preset,
    preset_names,
)

from .. import files
from ..errors import error, info, md, no_dead_end
from ..evidence_view import wire_class_check
from ..files import safe_stem
from ..models import classes_of, model_of, predictor
from ..outputs import (
    EDITOR,
    ClassAdded,
    ClassChange,
    ClassRenamed,
    PresetChosen,
    components,
    skipped,
)
from ..settings import CLASS_LIMITS, MODEL_DEFAULT_PRESET
from ..state import Session
from .analyse import result_values, warnings_markdown

if TYPE_CHECKING:  # pragma: no cover
    pass

# ---------------------------------------------------------------------------------- layout


def layout(ui: Any) -> None:
    """The class editor's components, added to `ui` (the compound builder: `compounds.py`)."""
    with gr.Row():
        ui.preset = gr.Dropdown(
            [MODEL_DEFAULT_PRESET, *preset_names()],
            value=MODEL_DEFAULT_PRESET,
            label="Preset (applies at once)",
            elem_id="preset",
        )
        ui.reset_btn = gr.Button("Reset to preset", elem_id="reset-classes-btn", scale=0)
        ui.undo_btn = gr.Button("Undo", visible=False, elem_id="undo-classes-btn", scale=0)
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


def wire(ui: Any) -> None:
    """The tab's events; every class-set change updates the editors and the current result.

    From the page, a refused change is a warning toast and leaves every editor and result as
    it was (`no_dead_end`); API callers get the error.
    """
    change = components(ui, ClassChange)

    def on_click(button: Any, fn: Callable, inputs: list, record: Any, api_name: str) -> None:
        button.click(no_dead_end(fn, record), inputs, components(ui, record), api_name=api_name)

    on_click(ui.reset_btn, reset_classes, [ui.preset, ui.session], ClassChange, "reset_classes")
    ui.preset.input(
        no_dead_end(choose_preset, PresetChosen),
        [ui.preset, ui.session],
        components(ui, PresetChosen),
        api_visibility="private",
    )
    ui.undo_btn.click(
        no_dead_end(undo_classes, PresetChosen),
        [ui.session],
        components(ui, PresetChosen),
        api_name="undo_classes",
    )
    ui.table.input(
        edit_table,
        [ui.table, ui.session],
        change,
        api_name="edit_classes_table",
        trigger_mode="always_last",
    )
    on_click(
        ui.add_class_btn, add_class, [ui.new_name, ui.new_desc, ui.session], ClassAdded, "add_class"
    )
    on_click(
        ui.rename_btn,
        rename_class,
        [ui.class_pick, ui.rename_to, ui.session],
        ClassRenamed,
        "rename_class",
    )
    on_click(ui.remove_btn, remove_class, [ui.class_pick, ui.session], ClassChange, "remove_class")
    ui.yaml.input(
        validate_classes,
        [ui.yaml, ui.session],
        [ui.message],
        api_name="validate_classes",
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_limit=None,
    )
    on_click(ui.apply_yaml_btn, set_classes, [ui.yaml, ui.session], ClassChange, "set_classes")
    ui.import_file.upload(
        no_dead_end(import_classes, ClassChange),
        [ui.import_file, ui.session],
        change,
        api_name="import_classes",
    )
    for button, fmt in ((ui.export_yaml_btn, "yaml"), (ui.export_json_btn, "json")):
        button.click(
            no_dead_end(functools.partial(export_classes, fmt)),
            [ui.session],
            [ui.export_file],
            api_name=f"export_classes_{fmt}",
        )
    wire_class_check(ui)


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
    message = classes_message(classes, checked(classes, session))
    return editor_values(classes, message)


def checked(classes: ClassSet, session: Session) -> list[str]:
    """`classes` validated (ClassSetError if invalid); its warnings for the session's model (the
    long-description warning counts that model's text token positions)."""
    context = 77
    try:
        context = predictor(model_of(session)).model.context_length
    except gr.Error:  # no model yet: CLIP's 77
        pass
    return classes.validate(CLASS_LIMITS, context_length=context)


def editor_skipped() -> dict[str, Any]:
    """EDITOR values leaving every editor component as it is."""
    return {name: gr.skip() for name in EDITOR}


def apply_classes(session: Session, classes: ClassSet) -> ClassChange:
    """Make `classes` the session's set, re-score the current video (no re-encoding), render."""
    warnings = checked(classes, session)
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


def classes_message(
    classes: ClassSet, warnings: Sequence[str], error: str | None = None, where: str = "above"
) -> str:
    """Validation line of the class editor (`where`: the text to fix, for an `error`)."""
    if error:
        return (
            f"**Not applied:** {md(error)}  \n"
            f"Fix the text {where}; the last valid class set is still in use."
        )
    head = (
        f"In use: {len(classes.classes)} classes, {len(classes.compounds)} compounds "
        f"({len(classes.texts)} descriptions) in set *{md(classes.name)}*"
    )
    return head + ("\n" + warnings_markdown(warnings) if warnings else "")


# ---------------------------------------------------------------------------------- handlers


def preset_classes(preset_name: str, session: Session) -> ClassSet:
    """The class set of a preset name (or of the model's default)."""
    try:
        if not preset_name or preset_name == MODEL_DEFAULT_PRESET:
            return predictor(model_of(session)).default_classes()
        return preset(preset_name)
    except ClassSetError as exc:
        raise error(exc) from exc


def reset_classes(preset_name: str, session: Session) -> ClassChange:
    """Reset the class set to a preset (or to the model's default)."""
    return apply_classes(session, preset_classes(preset_name, session))


def choose_preset(preset_name: str, session: Session) -> PresetChosen:
    """A preset chosen in the menu applies at once; the set it replaced can be restored."""
    previous = classes_of(session)
    out = apply_classes(session, preset_classes(preset_name, session))
    session.undo_classes = previous
    undo = gr.Button(f"Undo: back to {previous.name}"[:60], visible=True)
    return PresetChosen(*out, undo_btn=undo)


def undo_classes(session: Session) -> PresetChosen:
    """Restore the class set the last chosen preset replaced."""
    previous = session.undo_classes
    if previous is None:
        raise error("there is nothing to undo")
    session.undo_classes = None
    out = apply_classes(session, previous)
    return PresetChosen(*out, undo_btn=gr.Button(visible=False))


def edit_table(rows: Any, session: Session) -> ClassChange:
    """A cell of the class table was edited: rebuild the set from the rows (keeping compounds).

    A failed edit changes only the message (the editors keep their text).
    """
    try:
        classes = classes_from_rows(rows, classes_of(session), CLASS_LIMITS)
    except ClassSetError as exc:  # said once, in the message line under the preset menu
        message = classes_message(classes_of(session), [], error=str(exc), where="in the table")
        return skipped(ClassChange, message=message)
    if classes == classes_of(session):  # e.g. the same cell committed twice (Enter, then blur)
        message = classes_message(classes, checked(classes, session))
        return skipped(ClassChange, message=message)
    return apply_classes(session, classes)


def add_class(name: str, descriptions: str, session: Session) -> ClassAdded:
    """Add a class (or replace an existing class's descriptions); one description per line."""
    texts = [t.strip() for t in (descriptions or "").splitlines() if t.strip()]
    if not (name or "").strip():
        raise error("type a class name")
    if not texts:
        raise error("type at least one description (one per line)")
    current = classes_of(session)
    try:
        classes = current.with_class(name, texts, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise error(exc) from exc
    existing = named(current.classes, name)
    if existing is not None:
        info(f"Replaced the descriptions of the existing class '{existing}'")
    return ClassAdded(*apply_classes(session, classes), new_name="", new_desc="")


def named(items: Sequence[Any], name: str) -> str | None:
    """The name of the item of `items` called `name` (ignoring case and outer spaces), if any."""
    key = (name or "").strip().casefold()
    return next((c.name for c in items if c.name.casefold() == key), None)


def rename_class(old: str, new: str, session: Session) -> ClassRenamed:
    """Rename a class or compound (compounds follow)."""
    if not old:
        raise error("choose the class to rename")
    if not (new or "").strip():
        raise error("type the new name")
    current = classes_of(session)
    clash = named([*current.classes, *current.compounds], new)
    if clash is not None and clash.casefold() != old.strip().casefold():
        raise error(
            f"there is already a class or compound with the same name, '{clash}': remove it "
            f"first, or add its descriptions to '{old}' with Add class (renaming would merge "
            "the two)"
        )
    try:
        classes = current.renamed(old, new, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise error(exc) from exc
    return ClassRenamed(*apply_classes(session, classes), rename_to="")


def remove_class(name: str, session: Session) -> ClassChange:
    """Remove a class (and the compounds that use it)."""
    return remove_named(name, session, "choose the class to remove")


def remove_named(name: str, session: Session, missing: str) -> ClassChange:
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
        warnings = checked(classes, session)
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
