"""The API: `classify_video` and `classify_image` (JSON in, JSON out) and how to call them.

Shown at the bottom of the About tab (``api.md`` and a form to try the endpoints); every other
handler is an endpoint too (its `api_name`).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import gradio as gr

from emoclip.classes import ClassSet

from ..errors import error, no_dead_end, user_errors
from ..models import classes_of, gpu, model_of, predictor
from ..settings import CLASS_LIMITS
from ..state import Session


@cache
def api_text() -> str:
    """How to use the app from Python (Markdown with a ``{URL}`` placeholder, shipped as
    ``emoclip_app/api.md``)."""
    return files("emoclip_app").joinpath("api.md").read_text(encoding="utf-8")


def api_help(url: str = "http://127.0.0.1:7860/") -> str:
    """The API help with the app's address `url` in the sample."""
    return api_text().replace("{URL}", url.replace('"', "%22"))


def app_url(request: gr.Request | None) -> str:
    """The address the page was opened at (behind a proxy: its forwarded host and scheme)."""
    inner = getattr(request, "request", None)
    if inner is None:
        return "http://127.0.0.1:7860/"
    headers = request.headers or {}  # type: ignore[union-attr] # `inner` implies a request
    host = headers.get("x-forwarded-host")
    if not host:
        return str(inner.base_url)
    scheme = headers.get("x-forwarded-proto") or inner.url.scheme
    return f"{scheme}://{host}/"


def page_help(request: gr.Request) -> str:
    """Page load: the API help showing the running app's address."""
    return api_help(app_url(request))


def layout(ui: Any) -> None:
    """The API help and a form to try the endpoints, added to `ui`."""
    ui.api_help = gr.Markdown(api_help(), elem_id="api-help")
    with gr.Accordion("Try the classify_video endpoint", open=False):
        with gr.Row():
            ui.api_video = gr.File(label="Video file", type="filepath", elem_id="api-video")
            ui.api_classes = gr.Textbox(
                label="Class set (YAML or JSON; empty: current set)", lines=6, elem_id="api-classes"
            )
        ui.api_btn = gr.Button("Classify", elem_id="api-btn")
        ui.api_image = gr.File(label="Photo (classify_image)", type="filepath", elem_id="api-image")
        ui.api_image_btn = gr.Button("Classify photo", elem_id="api-image-btn")
        ui.api_result = gr.JSON(label="Result", elem_id="api-result")


def wire(demo: gr.Blocks, ui: Any, model_work: dict[str, Any]) -> None:
    """The endpoints' events (`model_work`: the options of events that run a model); the page
    load fills in the app's address in the help."""
    demo.load(page_help, None, [ui.api_help], show_progress="hidden", api_visibility="private")
    ui.api_btn.click(
        no_dead_end(classify_video),
        [ui.api_video, ui.api_classes, ui.session],
        [ui.api_result],
        api_name="classify_video",
        **model_work,
    )
    ui.api_image_btn.click(
        no_dead_end(classify_image),
        [ui.api_image, ui.api_classes, ui.session],
        [ui.api_result],
        api_name="classify_image",
        **model_work,
    )


@gpu
def classify_video(video: str | None, classes: str, session: Session) -> dict:
    """Classify a video file against a class set given as YAML or JSON text.

    Empty `classes` means the session's current set (the model's default preset for a new
    client). Returns model, classes, probabilities, top, timeline (windows), tracks, faces
    (frames with and without a face), video metadata, timings, warnings and evidence (key
    moments, best-matching descriptions, margin and the uncertain flag; docs/evidence.md).
    """
    if not video:
        raise error("no video file was given")
    try:
        if (classes or "").strip():
            class_set = ClassSet.parse(classes, limits=CLASS_LIMITS)
        else:
            class_set = classes_of(session)
        model = model_of(session)
        prediction = predictor(model, "center").predict(video, class_set)
    except user_errors() as exc:
        raise error(exc, video) from exc
    result = prediction.to_dict()
    result.pop("embedding", None)
    return result


@gpu
def classify_image(image: str | None, classes: str, session: Session) -> dict:
    """Classify every face of a photo (JPEG, PNG, WebP, BMP, TIFF) against a class set.

    As `classify_video` (which also accepts a photo), with one entry per face in ``tracks``
    (``box`` = [x, y, w, h] in pixels of the upright photo), verified faces first, then larger
    ones; the top-level probabilities are the first face's (the face a page shows is its own
    choice and never changes this answer) and there is no timeline.
    """
    if not image:
        raise error("no image file was given")
    return classify_video(image, classes, session)
