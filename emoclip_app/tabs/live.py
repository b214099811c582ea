"""The Live webcam tab: each streamed frame's face joins a ring buffer of the last T frames
(`emoclip.live.LiveWindow`), and the prediction is over that buffer.

Camera speed: the page captures a frame every `CAPTURE_EVERY` seconds, and gradio keeps only
the newest frame of a stream while one is processed (a new frame replaces the waiting one), so
frames that arrive meanwhile are dropped rather than queued and the label follows the camera.
The info line shows the processed frames/s and the time per frame; the page script measures
the latency from capture to label (``page.js``).
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import numpy as np

from .. import settings
from ..figures import live_figure
from ..models import classes_of, model_of, predictor
from ..outputs import LiveStep, components
from ..settings import LIVE_SECONDS
from ..state import LiveBuffer, Session

HISTORY = 240  # predictions kept for the live timeline
CAPTURE_EVERY = (
    1 / 15
)  # s between captures (15/s); a frame that arrives while one is processed replaces it
CAMERA = {"video": {"width": {"ideal": 480}, "height": {"ideal": 360}}}  # smaller frames: less
# to encode, send and decode per frame; a face in a webcam view stays far above the detector's
# smallest size
PLOT_EVERY = 1.0  # s between redraws of the live timeline (drawing it costs the page ~0.3 s)
PAUSE_SECONDS = 3.0  # a longer gap between frames means the stream stopped and started again


def layout(ui: Any) -> None:
    """The tab's components, added to `ui`."""
    gr.Markdown(
        "Each processed frame's face is embedded into a ring buffer of the last T frames; "
        "the prediction is over that buffer, with the class set of the *Classes* tab. Frames "
        "that arrive while one is processed are skipped, so the label follows the camera."
    )
    with gr.Row():
        with gr.Column():
            ui.cam = gr.Image(
                sources=["webcam"],
                streaming=True,
                type="numpy",
                label="Webcam",
                webcam_options=gr.WebcamOptions(constraints=CAMERA),
                elem_id="live-cam",
                height=320,
            )
            ui.live_info = gr.Markdown("Start the webcam to stream.", elem_id="live-fps")
            gr.HTML("", elem_id="live-latency", elem_classes=["plot-text"])
            ui.live_note = gr.Markdown(elem_id="live-warnings", elem_classes=["warning-banner"])
            ui.live_reset_btn = gr.Button("Clear buffer", size="sm", elem_id="live-reset")
        with gr.Column():
            ui.live_label = gr.Label(label="Last T frames", num_top_classes=5, elem_id="live-label")
            ui.live_plot = gr.Plot(label="Live timeline", elem_id="live-plot")


def wire(ui: Any) -> None:
    """The stream (gradio restarts it after `LIVE_SECONDS`; the info line says so) and the
    reset button."""
    outputs = components(ui, LiveStep)
    ui.cam.stream(
        live_step,
        [ui.cam, ui.live_buffer, ui.session],
        outputs,
        stream_every=CAPTURE_EVERY,
        time_limit=LIVE_SECONDS,
        concurrency_limit=max(2, int(settings.QUEUE["default_concurrency_limit"])),
        concurrency_id="live",
        show_progress="hidden",
        api_name="live_step",
    )
    ui.live_reset_btn.click(reset_live, [ui.live_buffer], outputs, api_name="reset_live")


def _buffer_for(buffer: LiveBuffer, name: str, names: tuple[str, ...], T: int) -> LiveBuffer:
    """`buffer`, or a new one when the model, the class names or T changed."""
    from emoclip.live import LiveWindow

    window = buffer.window
    if buffer.model != name or buffer.names != names or window is None or window.size != T:
        return LiveBuffer(model=name, names=names, window=LiveWindow(T))
    return buffer


def _rates(buffer: LiveBuffer, start: float, now: float) -> tuple[float, float]:
    """Record a processed frame; (processed frames/s over the recent frames, ms per frame)."""
    last = buffer.stamps[-1] if buffer.stamps else None
    if last is not None and start - last > PAUSE_SECONDS:
        buffer.note = (
            f"The stream paused for {start - last:.0f} s and resumed (it restarts every "
            f"{LIVE_SECONDS} s, or after the camera stopped); the buffer carried on."
        )
        buffer.stamps.clear()
    buffer.stamps.append(now)
    buffer.busy.append(now - start)
    buffer.frames += 1
    span = buffer.stamps[-1] - buffer.stamps[0]
    fps = (len(buffer.stamps) - 1) / span if span > 0 else 0.0
    return fps, 1000 * float(np.mean(buffer.busy))


def live_step(frame: np.ndarray | None, buffer: LiveBuffer, session: Session) -> LiveStep:
    """One webcam frame: crop the face, embed it into the ring buffer, predict over the last T."""
    if frame is None:
        return LiveStep(gr.skip(), gr.skip(), gr.skip(), buffer)
    start = time.monotonic()
    name = model_of(session)
    pred = predictor(name, "center")
    classes = classes_of(session)
    buffer = _buffer_for(buffer, name, tuple(classes.names), pred.parts.config.num_frames)
    window = buffer.window
    assert window is not None  # `_buffer_for` made one
    buffer.start = buffer.start or start
    found, added = window.add_frame(pred, frame)
    probs = window.probabilities(pred, classes) if added and len(window) else None
    fig = label = gr.skip()
    if probs is not None:
        buffer.times.append(start - buffer.start)
        buffer.history.append(probs)
        del buffer.times[:-HISTORY], buffer.history[:-HISTORY]
        label = dict(sorted(zip(classes.names, map(float, probs)), key=lambda kv: -kv[1]))
        if start - buffer.plotted >= PLOT_EVERY:
            buffer.plotted = start
            fig = live_figure(buffer.times, np.stack(buffer.history), classes.names)
    fps, ms = _rates(buffer, start, time.monotonic())
    if pred.parts.config.face_detection:
        faces = (
            f"face {'found' if found else 'not found (centre crop used)'} · "
            f"{window.faces}/{window.frames} frames with a face"
        )
    else:
        faces = "whole frames (this model takes no face crops)"
    info = (
        f"**Processed: {fps:.1f} frames/s** ({ms:.0f} ms per frame) · buffer "
        f"{len(window)}/{window.size} frames · {faces} · frame #{buffer.frames}"
    )
    if buffer.note:
        info += f"  \n{buffer.note}"
    return LiveStep(live_label=label, live_plot=fig, live_info=info, live_buffer=buffer)


def reset_live(buffer: LiveBuffer) -> LiveStep:
    """Empty the live ring buffer and history."""
    return LiveStep(
        live_label={}, live_plot=None, live_info="Buffer cleared.", live_buffer=LiveBuffer()
    )
