"""The About tab: how EmoCLIP works (``about.md``), the running model's card, the API."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import gradio as gr

from .. import card, models
from ..state import Session
from . import api


@cache
def about_text() -> str:
    """The About text (Markdown, shipped as ``emoclip_app/about.md``)."""
    return files("emoclip_app").joinpath("about.md").read_text(encoding="utf-8")


def layout(ui: Any) -> None:
    """The About text, the model card (`ui.card`) and the API section, added to `ui`."""
    gr.Markdown(about_text())
    ui.card = gr.Markdown(elem_id="model-card")
    api.layout(ui)


def model_card(session: Session) -> str:
    """The session's model card (`emoclip_app.card`): architecture, preprocessing, training,
    metrics and evaluation as tables, and every model's state."""
    return card.model_card(session.model or models.MODELS.default)
