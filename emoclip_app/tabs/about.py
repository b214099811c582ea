"""The About tab: how EmoCLIP works (``about.md``), the running model's card, the API."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import gradio as gr

from .. import models
from ..errors import code, md
from ..settings import short
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
    """The session's model (architecture, preprocessing, provenance) and every model's state."""
    name = session.model or models.MODELS.default
    parts = ["### The running model"]
    if name is None:
        parts.append("No model is loaded yet.")
    else:
        st = models.MODELS.status(name)
        parts.append(
            f"**{code(name)}**: {md(st.summary)}\n\n- **Weights from:** {md(short(st.where))}"
        )
        if st.state == "ready":
            model = models.MODELS.model(name)
            cfg = model.config
            pre = cfg.preprocess
            temporal = cfg.model.temporal
            depth = f", temporal transformer depth {temporal.depth}" if temporal else ""
            detection = "on" if pre.face_detection else "off (inputs are whole frames)"
            parts.append(
                f"- **Architecture:** backbone {code(cfg.model.backbone)}, pooling "
                f"{code(cfg.model.pooling)}{depth}; {model.num_parameters / 1e6:.1f} M parameters\n"
                f"- **Preprocessing:** {pre.image_size} px crops, {pre.sample_fps:g} frames/s, "
                f"T = {pre.num_frames} frames per window ({pre.window_seconds:g} s windows every "
                f"{pre.hop_seconds:g} s), face detection {detection}\n"
                f"- **Default classes:** {md(cfg.default_classes)}"
            )
            for key, value in (cfg.provenance or {}).items():
                parts.append(f"- **{md(key)}:** {md(value)}")
    parts.append("\n### All models")
    parts.append("| model | kind | state | weights | what it is |\n|---|---|---|---|---|")
    for other in models.MODELS.names():
        st = models.MODELS.status(other)
        failed = st.state in ("error", "missing") and st.detail
        state = st.state + (f" ({md(short(st.detail)[:200])})" if failed else "")
        parts.append(
            f"| {code(other)} | {md(models.model_kind(other) or '')} | {state} | "
            f"{md(short(st.where))} | {md(st.summary)} |"
        )
    return "\n".join(parts)
