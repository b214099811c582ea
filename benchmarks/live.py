"""P6, the webcam: frames per second of the app's live handler (`live_step`) at 640x480, or of the
same predictor path (`emoclip.live.LiveWindow`) without the app."""

from __future__ import annotations

import statistics
from typing import Any

from emoclip.testing.media import face_frames

from .model import make_predictor
from .timing import best_of, log
from .work import same_work


def bench_p6(model, frames_n: int, use_app: bool) -> dict[str, Any]:
    frames = list(face_frames(60, (480, 640)))
    res: dict[str, Any] = {}
    step = None
    if use_app:
        try:
            step, res["handler"] = _app_handler(model), "emoclip_app.tabs.live.live_step"
        except Exception as exc:  # noqa: BLE001 - the app is another engineer's, maybe mid-edit
            res["app_import_error"] = f"{type(exc).__name__}: {exc}"
            log(
                f"  emoclip_app live_step not usable ({res['app_import_error']}); benchmarking the predictor path"
            )
    if step is None:
        step, res["handler"] = (
            _predictor_handler(model),
            "predictor path (emoclip.live.LiveWindow: crop_frame + encode_images + pool + score)",
        )
    predictor = step.predictor
    T = predictor.parts.config.num_frames
    for i in range(T + 2):  # fill the ring buffer and warm up
        step(frames[i % len(frames)])
    times, work = [], []
    for i in range(frames_n):
        _, t = best_of(lambda i=i: step(frames[i % len(frames)]), 1, warmup=0, work=work)
        times += t
    res.update(
        {
            "work": {"frame": same_work(work)},
            "frames": frames_n,
            "window_frames": T,
            "mean_ms": 1e3 * sum(times) / len(times),
            "median_ms": 1e3 * statistics.median(times),
            "best_ms": 1e3 * min(times),
            "precision": predictor.parts.encoder.precision,
        }
    )
    res["P6"] = len(times) / sum(times)
    log(
        f"  {res['handler']}: {res['P6']:.1f} frames/s over {frames_n} frames at 640x480 "
        f"(mean {res['mean_ms']:.1f} ms, median {res['median_ms']:.1f} ms, best {res['best_ms']:.1f} ms)"
    )
    return res


def _app_handler(model):
    from emoclip_app import models  # noqa: PLC0415 - the app package (gradio import: slow, optional)
    from emoclip_app.state import LiveBuffer, Session  # noqa: PLC0415
    from emoclip_app.tabs.live import live_step  # noqa: PLC0415

    name = model.config.name
    models.MODELS.inject(name, model)
    session = Session(model=name)
    state = {"buffer": LiveBuffer()}

    def step(frame):
        out = live_step(frame, state["buffer"], session)
        state["buffer"] = out.live_buffer
        return out

    step.predictor = models.MODELS.predictor(name, "center")
    return step


def _predictor_handler(model):
    from emoclip.live import LiveWindow

    predictor = make_predictor(model)
    classes = predictor.default_classes()
    window = LiveWindow(predictor.parts.config.num_frames)

    def step(frame):
        window.add_frame(predictor, frame)
        return window.probabilities(predictor, classes)

    step.predictor = predictor
    return step
