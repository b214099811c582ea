"""The page header: the title, the status line (which model runs, what is loading) and the
model menu; the page-load event and the timer that follows background model loading."""

from __future__ import annotations

from typing import Any

import gradio as gr

from . import models
from .errors import code, error, info, md, no_dead_end
from .models import predictor
from .outputs import Analysed, ModelChange, components, skipped
from .settings import PAGE_WAIT_SECONDS, short
from .state import Session
from .tabs.about import model_card
from .tabs.analyse import analyse, banner, controls_for, failed, model_warnings
from .tabs.classes import editor_for, editor_skipped


def layout(ui: Any) -> None:
    """The title, status line and model menu, added to `ui`."""
    gr.Markdown(
        "# EmoCLIP: zero-shot facial-expression recognition in video\n"
        "Describe emotions in words; the model scores a face video against your "
        "descriptions.",
        elem_id="app-title",
    )
    with gr.Row(equal_height=True, elem_id="status-row"):
        ui.status = gr.Markdown("Loading a model…", elem_id="model-status")
        ui.model = gr.Dropdown(
            label="Model",
            choices=[],
            interactive=True,
            scale=0,
            min_width=280,
            elem_id="model-select",
        )


def wire(demo: gr.Blocks, ui: Any, ui_only: dict[str, Any], model_work: dict[str, Any]) -> None:
    """Page load, the loading timer and the model menu (`ui_only`, `model_work`: event options)."""
    outputs = components(ui, ModelChange)
    demo.load(init_page, [ui.session], outputs, **ui_only)
    ui.timer.tick(poll_models, [ui.session], outputs, **ui_only)
    ui.model.input(
        no_dead_end(select_model, ModelChange),
        [ui.model, ui.session],
        outputs,
        api_name="select_model",
    ).then(
        no_dead_end(analyse_if_loaded, Analysed, failed),
        [ui.video, ui.fallback, ui.session],
        components(ui, Analysed),
        api_visibility="private",
        **model_work,
    )


# ---------------------------------------------------------------------------------- handlers


def _model_change(session: Session, editor: dict[str, Any]) -> ModelChange:
    name = session.model or models.MODELS.default
    ready = name is not None and models.MODELS.status(name).state == "ready"
    detection = (
        models.MODELS.model(name).config.preprocess.face_detection
        if name is not None and ready
        else None
    )
    return ModelChange(
        session=session,
        status=status_markdown(session),
        model=model_dropdown(session),
        card=model_card(session),
        timer=gr.Timer(active=models.MODELS.busy()),
        **editor,
        **controls_for(detection),
        live_note=banner(model_warnings(name)) if ready else gr.skip(),
    )


def init_page(session: Session) -> ModelChange:
    """Page load: start loading models, wait for a first one, fill the status and the editor."""
    models.MODELS.start()
    models.MODELS.wait_ready(PAGE_WAIT_SECONDS)
    if models.MODELS.default is None and session.model is None:
        return _model_change(session, editor_skipped())
    session.shown_default = models.MODELS.default
    return _model_change(session, editor_for(session))


def poll_models(session: Session) -> ModelChange:
    """Timer tick while models load: refresh the status; adopt a better default model once ready.

    A session that chose a model, or already has results from the current one, keeps it.
    """
    editor = editor_skipped()
    note = None
    video = session.video
    if session.model is None and video is not None and models.MODELS.default != video.model:
        session.model = video.model  # keep the model that produced the results on screen
        note = f"{models.MODELS.default} is ready: choose it in the Model menu to use it"
    if session.model is None and models.MODELS.default is not None:
        current = session.shown_default
        if current != models.MODELS.default:
            session.shown_default = models.MODELS.default
            if current is not None:
                note = f"Switched to {models.MODELS.default}"
            if session.classes is None:
                editor = editor_for(session)
    if note:
        info(note)
    return _model_change(session, editor)


def select_model(name: str, session: Session) -> ModelChange:
    """The user picks a model: the session uses it from now on (the editor shows its classes)."""
    if not name:
        raise error("choose a model")
    predictor(name)  # load now (a clear error if it cannot be)
    session.model = name
    return _model_change(session, editor_for(session))


def analyse_if_loaded(
    video_path: str | None, fallback: str, session: Session, progress=gr.Progress()
) -> Analysed:
    """After a model switch: re-analyse the loaded video with the new model (nothing if none)."""
    if not video_path or session.video is None:
        return skipped(Analysed, session=session)
    return analyse(video_path, fallback, session, progress)


# ---------------------------------------------------------------------------------- status


def status_markdown(session: Session) -> str:
    """The status line: the session's model, its kind, and the models loading meanwhile."""
    name = session.model or models.MODELS.default
    lines = []
    failure = models.forced_failure() if name is None and not models.MODELS.busy() else None
    if failure:  # the operator's model, not silently another one
        lines.append(f"**No model is running.** {md(failure)}")
    elif name is None and models.MODELS.started() and not models.MODELS.busy():
        lines.append(
            "**No model could be loaded.** The About tab lists what was tried and how to "
            "get weights (e.g. `weights/emoclip-synthetic-tiny.safetensors` from the "
            "repository, or the authors' checkpoint through `emoclip convert`)."
        )
    elif name is None:
        loading = models.MODELS.loading()
        what = f"{code(loading[0])}" if loading else "the models"
        lines.append(f"**Loading {what}…** The page works as soon as a model is ready.")
    else:
        st = models.MODELS.status(name)
        lines.append(f"**Model:** {code(name)} · from {md(short(st.where))}  \n{md(st.summary)}")
        kind = models.model_kind(name)
        if kind == "toy":
            lines.append(
                "⚠ **This is a toy**: a tiny model trained on synthetic *cartoon* "
                "faces. It demonstrates the zero-shot mechanism; it is **not** a "
                "recogniser of real faces. The About tab says how to get the real "
                "EmoCLIP weights."
            )
        elif kind == "test":
            lines.append("⚠ **Test model with random weights**: its predictions mean nothing.")
        elif kind == "baseline":
            lines.append(
                "Note: the CLIP baseline (no temporal model, no emotion training); "
                "EmoCLIP does better."
            )
    for other in models.MODELS.loading():
        if other != name:
            st = models.MODELS.status(other)
            lines.append(
                f"Loading {code(other)} from {md(short(st.where))} in the background "
                f"({st.detail})… the app switches to it when it is ready."
            )
    if name != models.MODELS.default and models.MODELS.default in _ranked_above(name):
        lines.append(f"Note: {code(models.MODELS.default)} is ready: choose it in the Model menu.")
    return "  \n".join(lines)


def _ranked_above(name: str | None) -> list[str]:
    """Models the app prefers to `name`."""
    names = models.MODELS.names()
    return names[: names.index(name)] if name in names else []


def _model_choices() -> list[tuple[str, str]]:
    choices = []
    for name in models.MODELS.names():
        st = models.MODELS.status(name)
        if st.state in ("ready", "loading", "available"):
            tag = {"ready": "", "loading": " (loading…)", "available": ""}[st.state]
            kind = models.model_kind(name)
            toy = f" ({kind})" if kind in ("toy", "test") else ""
            choices.append((f"{name}{toy}{tag}", name))
    return choices


def model_dropdown(session: Session) -> Any:
    """The model menu: the models that can run, the session's one selected."""
    value = session.model or models.MODELS.default
    choices = _model_choices()
    if value is not None and value not in [v for _, v in choices]:
        choices.append((value, value))
    return gr.Dropdown(choices=choices, value=value)
