"""Following a video from the app's analyse handler to the image encoder never returns to a module
it has left (issue #19: "the facade composes, the pipeline never calls back").

Runs the app's video handler (`emoclip_app.tabs.analyse.analyse`, called with the arguments the
app's event passes) on a short generated clip with the random-weight test model, offline, while
a profile hook on the handler's thread watches for the image tower's forward.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

os.environ["EMOCLIP_APP_TEST_MODEL"] = "1"
os.environ["EMOCLIP_APP_MODEL"] = "test-emoclip-tiny"

from emoclip.testing.media import moving_face_frames, write_video  # noqa: E402
from emoclip_app import models  # noqa: E402
from emoclip_app.state import Session  # noqa: E402
from emoclip_app.tabs import analyse as analyse_tab  # noqa: E402

MODEL = "test-emoclip-tiny"
PROJECT = ("emoclip", "emoclip_app")


def _project_module(frame: FrameType) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name if name.split(".")[0] in PROJECT else None


def descents(target: Any, call: Callable[[], object]) -> list[list[str]]:
    """Run `call()`; for every call of the code object `target` made on this thread below it,
    the project modules of the frames between `call` and that call, outermost first (one entry
    per frame: a module appears as many times as it has frames on the stack)."""
    base = inspect.currentframe()
    found: list[list[str]] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event != "call" or frame.f_code is not target:
            return
        stack, f = [], frame.f_back
        while f is not None and f is not base:
            stack.append(_project_module(f))
            f = f.f_back
        if f is base:  # below `call` on this thread: the handler's own descent
            found.append([m for m in reversed(stack) if m is not None])

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return found


def re_entered(path: list[str]) -> list[str]:
    """Modules of `path` that come back after another module took over below them."""
    runs = [m for i, m in enumerate(path) if i == 0 or path[i - 1] != m]
    return sorted({m for m in runs if runs.count(m) > 1})


def test_re_entered_sees_a_module_the_descent_comes_back_to():
    assert re_entered(["a", "a", "b", "c", "c"]) == []
    assert re_entered(["a", "b", "a", "c"]) == ["a"]
    assert re_entered(["a", "b", "c", "b"]) == ["b"]


def test_the_descent_from_the_app_handler_to_the_image_tower_is_one_way(tmp_path):
    """What is checked: every call of the image tower's forward (open_clip's ``VisionTransformer
    .forward`` of the model's ``backbone.visual``) made on the handler's thread while the app's
    video handler `analyse` runs (the data-parallel workers' slices start in
    `emoclip.inference.parallel` on pool threads; the calling thread always encodes the first
    slice itself, so every batch has such a call) is looked at on the call stack at that moment:
    the frames from the handler down to the forward, each mapped to its module, non-project
    frames (torch, the standard library) dropped. Along that path a project module forms one
    unbroken run: once the descent has gone below a module into another one, that module never
    appears again further down (returning to a module is fine: it is no longer on the path).
    A module visited and left before the forward (e.g. the input layer resolving the upload)
    is not on the path and is not counted."""
    path = write_video(tmp_path / "descent.webm", moving_face_frames(16, size=(240, 320)), fps=8)
    models.MODELS.start()
    assert models.MODELS.wait_ready(120)
    pred = models.MODELS.predictor(MODEL, "center")
    visual = pred.model.backbone.visual
    target = type(visual).forward.__code__
    session = Session()

    found = descents(
        target, lambda: analyse_tab.analyse(str(path), "center", session, progress=_no_progress)
    )

    assert session.video is not None and session.video.prediction.faces.sampled_frames > 0
    assert found, "the image tower's forward was never reached on the handler's thread"
    for descent in found:
        assert descent[0] == "emoclip_app.tabs.analyse"
        assert "emoclip.inference.parts" in descent  # through the frame encoder
        assert re_entered(descent) == [], " -> ".join(
            m for i, m in enumerate(descent) if i == 0 or descent[i - 1] != m
        )


def _no_progress(*_: object, **__: object) -> None:
    """Stands in for gr.Progress outside a request."""
