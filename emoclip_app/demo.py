"""The whole app: the tabs assembled into one Blocks, their events wired, and `main`.

Every component lives in one namespace `ui` under one name (the names handlers' records use,
`outputs.py`); each tab module adds its components (`layout`) and wires its events (`wire`).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from types import SimpleNamespace
from typing import Any

import gradio as gr

from . import header, models, settings
from .evidence_view import class_check_layout
from .files import delete_cache_policy
from .state import LiveBuffer, Session
from .tabs import about, analyse, api, classes, compounds, explorer, face_pick, live
from .theme import theme

TITLE = "EmoCLIP: zero-shot facial expressions in video"


@cache
def page_script() -> str:
    """The page's script (``emoclip_app/page.js``: live latency meter, explorer point clicks)."""
    code = files("emoclip_app").joinpath("page.js").read_text(encoding="utf-8")
    return f"<script>\n{code}\n</script>"


@cache
def css() -> str:
    """The app's style sheet (``emoclip_app/style.css``)."""
    return files("emoclip_app").joinpath("style.css").read_text(encoding="utf-8")


def build_demo(delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The Blocks UI (no model work: models load when a page opens or at `MODELS.start()`).

    `delete_cache`: gradio's (frequency, age) in seconds; default `delete_cache_policy()`.
    """
    with gr.Blocks(title=TITLE, delete_cache=delete_cache or delete_cache_policy()) as demo:
        ui = SimpleNamespace()
        ui.session = gr.State(Session())
        ui.live_buffer = gr.State(LiveBuffer())
        ui.timer = gr.Timer(1.0, active=False)
        header.layout(ui)
        with gr.Tabs():
            with gr.Tab("Analyse video", id="analyse"):
                analyse.layout(ui)
            with gr.Tab("Live webcam", id="live"):
                live.layout(ui)
            with gr.Tab("Classes & compounds", id="classes"), gr.Row():
                with gr.Column(scale=3):
                    classes.layout(ui)
                with gr.Column(scale=2):
                    class_check_layout(ui)
                    compounds.layout(ui)
            with gr.Tab("Latent explorer", id="explorer"):
                explorer.layout(ui)
            with gr.Tab("About", id="about"):
                about.layout(ui)
        ui_only = dict(show_progress="hidden", api_visibility="private", concurrency_limit=None)
        model_work = dict(concurrency_id="model")  # analyses share the default concurrency limit
        header.wire(demo, ui, ui_only, model_work)
        analyse.wire(ui, model_work)
        face_pick.wire(ui)
        live.wire(ui)
        classes.wire(ui)
        compounds.wire(ui)
        explorer.wire(ui, model_work)
        api.wire(demo, ui, model_work)
    return demo


def launch_options() -> dict[str, Any]:
    """Arguments for `demo.launch` (upload limit, session-state bound, example clips readable,
    the style sheet and the theme)."""
    return dict(
        max_file_size=(
            None if settings.MAX_UPLOAD_MB is None else f"{int(settings.MAX_UPLOAD_MB)}mb"
        ),
        state_session_capacity=settings.MAX_SESSIONS,
        allowed_paths=[str(settings.ASSETS)],
        css=css(),
        theme=theme(),
        head=page_script(),
    )


def main(argv: list[str] | None = None, demo: gr.Blocks | None = None) -> None:
    """``python app.py [--verbose]``: serve the app until Ctrl+C.

    The terminal shows the URL and the app's own messages only: native libraries' log lines
    (MediaPipe/LiteRT, absl, FFmpeg) and gradio's other start-up lines are silenced unless
    ``--verbose`` or ``EMOCLIP_LOG_LEVEL=debug``. `demo` defaults to a new `build_demo()`.
    """
    import sys

    from emoclip.quiet import silence_native_stderr
    from emoclip.settings import native_logs_enabled, show_native_logs

    argv = sys.argv[1:] if argv is None else argv
    if "--verbose" in argv:
        show_native_logs()
    verbose = native_logs_enabled()
    if not verbose:
        silence_native_stderr()
    demo = demo or build_demo()
    models.MODELS.start()  # discover and load models in the background; the page serves meanwhile
    _, url, _ = demo.queue(**settings.QUEUE).launch(
        quiet=not verbose, prevent_thread_lock=True, **launch_options()
    )
    if not verbose:  # gradio printed nothing: the one line a user needs
        print(f"* Running on local URL:  {str(url).rstrip('/')}", flush=True)
    demo.block_thread()
