"""The Live webcam tab: each streamed frame's face joins a ring buffer of the last T frames
(`emoclip.live.LiveWindow`), and the prediction is over that buffer."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import numpy as np

from ..figures import live_figure
from ..models import classes_of, model_of, predictor
from ..outputs import LiveStep, components
from ..settings import LIVE_SECONDS
from ..state import LiveBuffer, Session

HISTORY = 240  # predictions kept for the live timeline


def layout(ui: Any) -> None:
    """The tab's components, added to `ui`."""
    gr.Markdown(
        "Each processed frame's face is embedded into a ring buffer of the last T frames; "
        "the prediction is over that buffer, with the class set of the *Classes* tab."
    )
    with gr.Row():
        with gr.Column():
            ui.cam = gr.Image(
                sources=["webcam"],
                streaming=True,
                type="numpy",
                label="Webcam",
                elem_id="live-cam",
                height=320,
            )
            ui.live_info = gr.Markdown("Start the webcam to stream.", elem_id="live-fps")
            ui.live_reset_btn = gr.Button("Clear buffer", size="sm", elem_id="live-reset")
        with gr.Column():
            ui.live_label = gr.Label(label="Last T frames", num_top_classes=5, elem_id="live-label")
            ui.live_plot = gr.Plot(label="Live timeline", elem_id="live-plot")


def wire(ui: Any) -> None:
    """The stream (at most `LIVE_SECONDS` per start) and the reset button."""
    outputs = components(ui, LiveStep)
    ui.cam.stream(
        live_step,
        [ui.cam, ui.live_buffer, ui.session],
        outputs,
        stream_every=0.5,
        time_limit=LIVE_SECONDS,
        concurrency_limit=4,
        concurrency_id="live",
        show_progress="hidden",
        api_name="live_step",
    )
    ui.live_reset_btn.click(reset_live, [ui.live_buffer], outputs, api_name="reset_live")


def live_step(frame: np.ndarray | None, buffer: LiveBuffer, session: Session) -> LiveStep:
    """One webcam frame: crop the face, embed it into the ring buffer, predict over the last T."""
    if frame is None:
        return LiveStep(gr.skip(), gr.skip(), gr.skip(), buffer)
    from emoclip.live import LiveWindow

    name = model_of(session)
    pred = predictor(name, "center")
    classes = classes_of(session)
    T = pred.encoder.config.num_frames
    names = tuple(classes.names)
    window = buffer.window
    if buffer.model != name or buffer.names != names or window is None or window.size != T:
        window = LiveWindow(T)
        buffer = LiveBuffer(model=name, names=names, window=window)
    now = time.monotonic()
    buffer.start = buffer.start or now
    buffer.stamps.append(now)
    found, added = window.add_frame(pred, frame)
    span = buffer.stamps[-1] - buffer.stamps[0]
    fps = (len(buffer.stamps) - 1) / span if span > 0 else 0.0
    if pred.encoder.config.face_detection:
        faces = (
            f"face {'found' if found else 'not found (centre crop used)'} · "
            f"{window.faces}/{window.frames} frames with a face"
        )
    else:
        faces = "whole frames (this model takes no face crops)"
    info = f"**Processed: {fps:.1f} frames/s** · buffer {len(window)}/{T} frames · {faces}"
    if not added or not len(window):
        return LiveStep(gr.skip(), gr.skip(), info, buffer)
    probs = window.probabilities(pred, classes)
    if probs is None:  # only for an empty window, which the check above rules out
        return LiveStep(gr.skip(), gr.skip(), info, buffer)
    buffer.times.append(now - buffer.start)
    buffer.history.append(probs)
    del buffer.times[:-HISTORY], buffer.history[:-HISTORY]
    label = dict(sorted(zip(classes.names, map(float, probs)), key=lambda kv: -kv[1]))
    fig = live_figure(buffer.times, np.stack(buffer.history), classes.names)
    return LiveStep(live_label=label, live_plot=fig, live_info=info, live_buffer=buffer)


def reset_live(buffer: LiveBuffer) -> LiveStep:
    """Empty the live ring buffer and history."""
    return LiveStep(
        live_label={}, live_plot=None, live_info="Buffer cleared.", live_buffer=LiveBuffer()
    )
