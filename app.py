"""EmoCLIP demo: zero-shot facial-expression recognition in video, in a Gradio 6 Blocks app.

Run ``python app.py`` (or ``gradio app.py`` for reload mode). The page serves at once; models
load in a background thread (the best available first: local EmoCLIP weights, Hub EmoCLIP
weights, the CLIP baseline, the synthetic toy model) and the status line says which model runs.

This file is UI only: layout, event wiring, and turning package results into component values.
The model work is `emoclip` (`EmotionPredictor`); plots, tables and model loading helpers are in
`app_support.py`. Per-user data lives in `gr.State` only; the module-level `MODELS` manager
shares model weights and predictors, which hold no user data.

Environment: EMOCLIP_APP_MODEL (model to run by default), EMOCLIP_APP_TEST_MODEL=1 (offer the
random-weight test model), EMOCLIP_DEVICE, EMOCLIP_MAX_UPLOAD_MB (200), EMOCLIP_MAX_SECONDS (600),
EMOCLIP_MAX_MEGAPIXELS (9), EMOCLIP_MAX_CLASSES (64), EMOCLIP_CONCURRENCY (2),
EMOCLIP_QUEUE_SIZE (32), EMOCLIP_LIVE_SECONDS (120), EMOCLIP_FILES_SECONDS (3600: uploads and
downloads are deleted after this long), EMOCLIP_SESSIONS (1000: sessions whose state is kept),
EMOCLIP_LOG_LEVEL=debug (as ``--verbose``: show native libraries' log lines and gradio's
start-up messages).
"""

from __future__ import annotations

import functools
import html
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np

from app_support import (
    ModelManager,
    OutputDir,
    bars_figure,
    class_rows,
    classes_from_rows,
    classes_message,
    code,
    compound_preview,
    draw_faces,
    env_float,
    faces_markdown,
    is_toy,
    live_figure,
    md,
    model_kind,
    parse_weights,
    preview_markdown,
    safe_stem,
    summary_markdown,
    timeline_figure,
    timings_markdown,
    warnings_markdown,
)
from emoclip.classes import ClassSet, ClassSetError, Limits, preset, preset_names

try:  # Hugging Face ZeroGPU Spaces: only the model-running handlers ask for a GPU.
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment

    def gpu(fn: Callable | None = None, **_: Any) -> Any:
        """No-op stand-in for `spaces.GPU` (usable bare or with arguments)."""
        return fn if fn is not None else (lambda f: f)


HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"
EXAMPLES = sorted([*ASSETS.glob("*.webm"), *ASSETS.glob("*.mp4")])
MAX_UPLOAD_MB = env_float("EMOCLIP_MAX_UPLOAD_MB", 200.0)
MAX_SECONDS = env_float("EMOCLIP_MAX_SECONDS", 600.0)
MAX_MEGAPIXELS = env_float("EMOCLIP_MAX_MEGAPIXELS", 9.0)
CLASS_LIMITS = Limits(max_classes=int(env_float("EMOCLIP_MAX_CLASSES", 64) or 64))
LIVE_SECONDS = int(env_float("EMOCLIP_LIVE_SECONDS", 120) or 120)
FILES_SECONDS = env_float("EMOCLIP_FILES_SECONDS", 3600.0)
MAX_SESSIONS = int(env_float("EMOCLIP_SESSIONS", 1000) or 1000)
QUEUE = dict(default_concurrency_limit=int(env_float("EMOCLIP_CONCURRENCY", 2) or 2),
             max_size=int(env_float("EMOCLIP_QUEUE_SIZE", 32) or 32))
MODEL_DEFAULT_PRESET = "(the model's default)"
MAX_SESSION_CLIPS = 50
MODEL_WAIT_SECONDS = 120.0  # a handler waits this long for the first model
PAGE_WAIT_SECONDS = 15.0  # the page-load event waits this long, then the timer takes over


MODELS = ModelManager(
    [HERE / "weights"],
    include_test_model=os.environ.get("EMOCLIP_APP_TEST_MODEL", "") not in ("", "0", "false"),
    forced=os.environ.get("EMOCLIP_APP_MODEL") or None,
    limits=dict(
        max_bytes=None if MAX_UPLOAD_MB is None else int(MAX_UPLOAD_MB * 1e6),
        max_duration=MAX_SECONDS,
        max_pixels=None if MAX_MEGAPIXELS is None else int(MAX_MEGAPIXELS * 1e6),
    ),
    device=os.environ.get("EMOCLIP_DEVICE", "cpu"),
)
OUTPUTS = OutputDir(max_age=FILES_SECONDS or float("inf"))
# (model, example path) -> clip embedding; shared by all sessions (the examples are public assets)
_EXAMPLE_EMBEDDINGS: dict[tuple[str, str], np.ndarray] = {}


# ------------------------------------------------------------------------------- session state


@dataclass
class CurrentVideo:
    """The session's analysed video: its encoding (re-scored on class edits) and latest result."""

    path: str
    name: str
    model: str
    fallback: str
    encoding: Any  # emoclip.inference.predictor.VideoEncoding
    prediction: Any  # emoclip.Prediction under the session's current classes


@dataclass
class Clip:
    """An analysed clip kept for the latent explorer."""

    key: str
    name: str
    model: str
    path: str
    embedding: np.ndarray


@dataclass
class Session:
    """Everything one browser session owns (stored in `gr.State`, never in module globals)."""

    model: str | None = None  # the user's choice; None follows the app's default model
    classes: ClassSet | None = None  # None: the model's default class set
    video: CurrentVideo | None = None
    clips: list[Clip] = field(default_factory=list)
    points: list[Any] = field(default_factory=list)  # the explorer's last projection (LatentPoint)
    coords: Any = None  # (N, 2) projected coordinates of `points`
    projection: str = ""
    frames_encoded: int = 0
    encodings: int = 0
    rescored: int = 0
    shown_default: str | None = None  # the default model the editor was last filled for


@dataclass
class LiveBuffer:
    """The live webcam's ring buffer of frame embeddings and its prediction history."""

    model: str | None = None
    names: tuple[str, ...] = ()
    embeddings: deque = field(default_factory=deque)
    start: float | None = None
    times: list[float] = field(default_factory=list)
    history: list[np.ndarray] = field(default_factory=list)
    stamps: deque = field(default_factory=lambda: deque(maxlen=12))
    frames: int = 0
    faces: int = 0


# ---------------------------------------------------------------------------------- helpers


def _error(exc: BaseException | str, path: str | None = None) -> gr.Error:
    """A gr.Error showing the package's message as text (the modal renders HTML).

    `path` (a server-side upload path) is shortened to its file name in the message.
    """
    message = str(exc)
    if path:
        message = message.replace(str(path), Path(path).name)
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The package's errors whose message is meant for the user."""
    from emoclip.inference.predictor import LimitError, NoFaceError
    from emoclip.video import VideoDecodeError

    return (VideoDecodeError, LimitError, NoFaceError, ClassSetError)


def _model_of(session: Session) -> str:
    """The model this session runs, waiting for the first one to load if needed."""
    if session.model:
        return session.model
    if MODELS.default is None and not MODELS.wait_ready(MODEL_WAIT_SECONDS):
        raise _error(_no_model_message())
    return MODELS.default  # type: ignore[return-value]


def _no_model_message() -> str:
    lines = ["No model could be loaded."]
    for name in MODELS.names():
        st = MODELS.status(name)
        lines.append(f"{name}: {st.state} {st.detail}".strip())
    lines.append("See the About tab: how to get the weights.")
    return "\n".join(lines)


def _predictor(name: str, fallback: str = "center"):
    try:
        return MODELS.predictor(name, fallback)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise _error(f"model {name} could not be loaded: {exc}") from exc


def _classes_of(session: Session) -> ClassSet:
    """The session's class set (the model's default until the user edits it)."""
    if session.classes is not None:
        return session.classes
    return _predictor(_model_of(session)).default_classes()


def _encoding_fingerprint(video: CurrentVideo | None) -> str:
    return "" if video is None else video.encoding.key


# --------------------------------------------------------------------------- status & model card


def _status_markdown(session: Session) -> str:
    name = session.model or MODELS.default
    lines = []
    if name is None and MODELS.started() and not MODELS.busy():
        lines.append("**No model could be loaded.** The About tab lists what was tried and how to "
                     "get weights (e.g. `weights/emoclip-synthetic-tiny.safetensors` from the "
                     "repository, or the authors' checkpoint through `emoclip convert`).")
    elif name is None:
        loading = MODELS.loading()
        what = f"{code(loading[0])}" if loading else "the models"
        lines.append(f"**Loading {what}…** The page works as soon as a model is ready.")
    else:
        st = MODELS.status(name)
        lines.append(f"**Model:** {code(name)} · from {md(_short(st.where))}  \n{md(st.summary)}")
        kind = model_kind(name)
        if kind == "toy":
            lines.append("⚠ **This is a toy**: a tiny model trained on synthetic *cartoon* faces. "
                         "It demonstrates the zero-shot mechanism; it is **not** a recogniser of "
                         "real faces. The About tab says how to get the real EmoCLIP weights.")
        elif kind == "test":
            lines.append("⚠ **Test model with random weights**: its predictions mean nothing.")
        elif kind == "baseline":
            lines.append("Note: the CLIP baseline (no temporal model, no emotion training); "
                         "EmoCLIP does better.")
    for other in MODELS.loading():
        if other != name:
            st = MODELS.status(other)
            lines.append(f"Loading {code(other)} from {md(_short(st.where))} in the background "
                         f"({st.detail})… the app switches to it when it is ready.")
    if name != MODELS.default and MODELS.default in _ranked_above(name):
        lines.append(f"Note: {code(MODELS.default)} is ready: choose it in the Model menu.")
    return "  \n".join(lines)


def _short(text: str) -> str:
    """Paths inside the app's folder shown relative to it."""
    return text.replace(f"{HERE}{os.sep}", "")


def _ranked_above(name: str | None) -> list[str]:
    """Models the app prefers to `name`."""
    names = MODELS.names()
    return names[: names.index(name)] if name in names else []


def _model_choices() -> list[tuple[str, str]]:
    choices = []
    for name in MODELS.names():
        st = MODELS.status(name)
        if st.state in ("ready", "loading", "available"):
            tag = {"ready": "", "loading": " (loading…)", "available": ""}[st.state]
            kind = model_kind(name)
            toy = f" ({kind})" if kind in ("toy", "test") else ""
            choices.append((f"{name}{toy}{tag}", name))
    return choices


def _model_dropdown(session: Session) -> Any:
    value = session.model or MODELS.default
    choices = _model_choices()
    if value is not None and value not in [v for _, v in choices]:
        choices.append((value, value))
    return gr.Dropdown(choices=choices, value=value)


def _model_card(session: Session) -> str:
    name = session.model or MODELS.default
    parts = ["### The running model"]
    if name is None:
        parts.append("No model is loaded yet.")
    else:
        st = MODELS.status(name)
        parts.append(f"**{code(name)}**: {md(st.summary)}\n\n- **Weights from:** {md(_short(st.where))}")
        if st.state == "ready":
            model = MODELS.model(name)
            cfg = model.config
            pre = cfg.preprocess
            params = sum(p.numel() for p in model.parameters())
            temporal = cfg.model.temporal
            depth = f", temporal transformer depth {temporal.depth}" if temporal else ""
            detection = "on" if pre.face_detection else "off (inputs are whole frames)"
            parts.append(
                f"- **Architecture:** backbone {code(cfg.model.backbone)}, pooling "
                f"{code(cfg.model.pooling)}{depth}; {params / 1e6:.1f} M parameters\n"
                f"- **Preprocessing:** {pre.image_size} px crops, {pre.sample_fps:g} frames/s, "
                f"T = {pre.num_frames} frames per window ({pre.window_seconds:g} s windows every "
                f"{pre.hop_seconds:g} s), face detection {detection}\n"
                f"- **Default classes:** {md(cfg.default_classes)}")
            for key, value in (cfg.provenance or {}).items():
                parts.append(f"- **{md(key)}:** {md(value)}")
    parts.append("\n### All models")
    parts.append("| model | kind | state | weights | what it is |\n|---|---|---|---|---|")
    for other in MODELS.names():
        st = MODELS.status(other)
        failed = st.state in ("error", "missing") and st.detail
        state = st.state + (f" ({md(_short(st.detail)[:200])})" if failed else "")
        parts.append(f"| {code(other)} | {md(model_kind(other) or '')} | {state} | "
                     f"{md(_short(st.where))} | {md(st.summary)} |")
    return "\n".join(parts)


# ------------------------------------------------------------------------------ result values


def _download_files(prediction: Any, name: str) -> list[str]:
    folder = OUTPUTS.new()
    stem = safe_stem(name)
    json_path, csv_path = folder / f"{stem}-emotions.json", folder / f"{stem}-emotions.csv"
    prediction.to_json(json_path)
    prediction.to_csv(csv_path)
    return [str(json_path), str(csv_path)]


def _result_values(session: Session, *, encoded_now: bool = False, gallery: bool = False) -> tuple:
    """Values for RESULT_OUTPUTS (gr.skip() for all when there is no video)."""
    video = session.video
    if video is None:
        return tuple(gr.skip() for _ in range(10))
    pred = video.prediction
    classes = _classes_of(session)
    compounds = [c.name for c in classes.compounds]
    warnings = list(pred.warnings)
    if is_toy(video.model):
        warnings.append(f"{video.model} is a toy/test model: "
                        "these numbers say nothing about real faces")
    top = dict(sorted(pred.probabilities.items(), key=lambda kv: -kv[1]))
    photo = pred.video.get("kind") == "image"
    thumbs = ([(img, f"face {i + 1}" if photo and pred.tracks else f"{t:.1f} s")
               for i, (t, img) in enumerate(video.encoding.thumbnails)] if gallery else gr.skip())
    timings = timings_markdown(pred.timings, frames_encoded=session.frames_encoded,
                               rescored=session.rescored, encodings=session.encodings)
    return (
        summary_markdown(pred, model=video.model, encoded_now=encoded_now),
        top,
        bars_figure(pred.probabilities, compounds),
        timeline_figure(pred, compounds),
        thumbs,
        _download_files(pred, video.name),
        timings,
        warnings_markdown(warnings),
        top,
        timings,
    )


def _editor_values(session: Session, classes: ClassSet, message: str) -> tuple:
    """Values for EDITOR_OUTPUTS."""
    classes_only = [c.name for c in classes.classes]
    compounds = [c.name for c in classes.compounds]
    return (
        class_rows(classes),
        classes.to_yaml(),
        message,
        gr.Dropdown(choices=classes_only, value=classes_only[0] if classes_only else None),
        gr.CheckboxGroup(choices=classes_only, value=[]),
        gr.Dropdown(choices=compounds, value=compounds[0] if compounds else None),
    )


def _editor_for(session: Session) -> tuple:
    """EDITOR values showing the session's current class set and its validation."""
    classes = _classes_of(session)
    message = classes_message(classes, classes.validate(CLASS_LIMITS))
    return _editor_values(session, classes, message)


def _apply_classes(session: Session, classes: ClassSet) -> tuple:
    """Make `classes` the session's set, re-score the current video (no re-encoding), render."""
    warnings = classes.validate(CLASS_LIMITS)
    session.classes = classes
    video = session.video
    if video is not None:
        predictor = _predictor(video.model, video.fallback)
        video.prediction = predictor.score(video.encoding, classes)
        session.rescored += 1
    return (session, *_editor_values(session, classes, classes_message(classes, warnings)),
            *_result_values(session))


def _skip_class_change(message: str) -> tuple:
    """Outputs of a failed class edit: only the message changes (the editors keep their text)."""
    n = 1 + 6 + 10
    out = [gr.skip()] * n
    out[3] = message  # class_msg
    return tuple(out)


# ---------------------------------------------------------------------------------- handlers


def init_page(session: Session) -> tuple:
    """Page load: start loading models, wait for a first one, fill the status and the editor."""
    MODELS.start()
    MODELS.wait_ready(PAGE_WAIT_SECONDS)
    if MODELS.default is None and session.model is None:
        return (session, _status_markdown(session), _model_dropdown(session), _model_card(session),
                gr.Timer(active=MODELS.busy()), *[gr.skip()] * 6)
    session.shown_default = MODELS.default
    editor = _editor_for(session)
    return (session, _status_markdown(session), _model_dropdown(session), _model_card(session),
            gr.Timer(active=MODELS.busy()), *editor)


def poll_models(session: Session) -> tuple:
    """Timer tick while models load: refresh the status; adopt a better default model once ready.

    A session that chose a model, or already has results from the current one, keeps it.
    """
    editor: tuple = tuple(gr.skip() for _ in range(6))
    note = None
    video = session.video
    if session.model is None and video is not None and MODELS.default != video.model:
        session.model = video.model  # keep the model that produced the results on screen
        note = f"{MODELS.default} is ready: choose it in the Model menu to use it"
    if session.model is None and MODELS.default is not None:
        current = session.shown_default
        if current != MODELS.default:
            session.shown_default = MODELS.default
            if current is not None:
                note = f"Switched to {MODELS.default}"
            if session.classes is None:
                editor = _editor_for(session)
    if note:
        gr.Info(html.escape(note, quote=False))
    return (session, _status_markdown(session), _model_dropdown(session), _model_card(session),
            gr.Timer(active=MODELS.busy()), *editor)


def select_model(name: str, session: Session) -> tuple:
    """The user picks a model: the session uses it from now on (the editor shows its classes)."""
    if not name:
        raise _error("choose a model")
    _predictor(name)  # load now (a clear error if it cannot be)
    session.model = name
    editor = _editor_for(session)
    return (session, _status_markdown(session), _model_dropdown(session), _model_card(session),
            gr.Timer(active=MODELS.busy()), *editor)


@gpu
def analyse(video_path: str | None, fallback: str, session: Session,
            progress=gr.Progress()) -> tuple:
    """Analyse a video: encode it once (cached), score it against the session's class set."""
    if not video_path:
        raise _error("Upload or record a video first (or click an example).")
    name = _model_of(session)
    predictor = _predictor(name, fallback or "center")
    classes = _classes_of(session)
    fresh = []

    def report(fraction: float, message: str) -> None:
        fresh.append(fraction)
        progress(fraction, desc=message)

    progress(0.0, desc="reading the video")
    try:
        encoding = predictor.encode(video_path, progress=report)
        prediction = predictor.score(encoding, classes)
    except _user_errors() as exc:
        raise _error(exc, video_path) from exc
    encoded_now = bool(fresh)
    if encoded_now:
        session.frames_encoded += int(len(encoding.frame_embeddings))
        session.encodings += 1
    clip_name = prediction.video.get("name") or Path(video_path).name
    fallback = fallback or "center"
    session.video = CurrentVideo(video_path, clip_name, name, fallback, encoding, prediction)
    if not any(c.key == encoding.key for c in session.clips):
        embedding = prediction.embedding.copy()
        session.clips.append(Clip(encoding.key, clip_name, name, video_path, embedding))
        del session.clips[:-MAX_SESSION_CLIPS]
    return (session, *_result_values(session, encoded_now=encoded_now, gallery=True))


@gpu
def analyse_photo(image_path: str | None, fallback: str, session: Session,
                  progress=gr.Progress()) -> tuple:
    """Analyse a photo: every face scored (largest first); the photo comes back with numbered boxes.

    Returns `analyse`'s outputs, then the annotated photo ((H, W, 3) uint8 RGB) and one Markdown
    line per face.
    """
    if not image_path:
        raise _error("Upload a photo first (JPEG, PNG, WebP, BMP or TIFF).")
    from emoclip.images import read_image

    out = analyse(image_path, fallback, session, progress)  # the limits and bad files are checked here
    pred = session.video.prediction
    if pred.video.get("kind") != "image":
        raise _error(f"{Path(image_path).name} is a video: use the video box above")
    try:
        still = read_image(image_path)
    except _user_errors() as exc:
        raise _error(exc, image_path) from exc
    boxes = [t.box for t in pred.tracks if t.box is not None]
    return (*out, draw_faces(still.image, boxes), faces_markdown(pred))


def analyse_if_loaded(video_path: str | None, fallback: str, session: Session,
                      progress=gr.Progress()) -> tuple:
    """After a model switch: re-analyse the loaded video with the new model (nothing if none)."""
    if not video_path or session.video is None:
        return (session, *[gr.skip()] * 10)
    return analyse(video_path, fallback, session, progress)


def live_step(frame: np.ndarray | None, buffer: LiveBuffer, session: Session) -> tuple:
    """One webcam frame: crop the face, embed it into the ring buffer, predict over the last T."""
    if frame is None:
        return gr.skip(), gr.skip(), gr.skip(), buffer
    name = _model_of(session)
    predictor = _predictor(name, "center")
    classes = _classes_of(session)
    T = predictor.config.num_frames
    names = tuple(classes.names)
    if buffer.model != name or buffer.names != names or buffer.embeddings.maxlen != T:
        buffer = LiveBuffer(model=name, names=tuple(classes.names), embeddings=deque(maxlen=T))
    now = time.monotonic()
    buffer.start = buffer.start or now
    buffer.stamps.append(now)
    buffer.frames += 1
    crop, found = predictor.crop_frame(np.ascontiguousarray(frame[..., :3]))
    buffer.faces += int(found)
    if crop is not None:
        buffer.embeddings.append(predictor.encode_images(crop[None])[0])
    span = buffer.stamps[-1] - buffer.stamps[0]
    fps = (len(buffer.stamps) - 1) / span if span > 0 else 0.0
    if predictor.config.face_detection:
        faces = (f"face {'found' if found else 'not found (centre crop used)'} · "
                 f"{buffer.faces}/{buffer.frames} frames with a face")
    else:
        faces = "whole frames (this model takes no face crops)"
    info = (f"**Processed: {fps:.1f} frames/s** · buffer {len(buffer.embeddings)}/{T} frames · "
            f"{faces}")
    if crop is None or not buffer.embeddings:
        return gr.skip(), gr.skip(), info, buffer
    import torch

    video = predictor.pool(torch.stack(list(buffer.embeddings)))
    probs = predictor.score_embeddings(video.numpy(), classes)
    buffer.times.append(now - buffer.start)
    buffer.history.append(probs)
    del buffer.times[:-240], buffer.history[:-240]
    label = dict(sorted(zip(classes.names, map(float, probs)), key=lambda kv: -kv[1]))
    fig = live_figure(buffer.times, np.stack(buffer.history), classes.names)
    return label, fig, info, buffer


def reset_live(buffer: LiveBuffer) -> tuple:
    """Empty the live ring buffer and history."""
    return {}, None, "Buffer cleared.", LiveBuffer()


def reset_classes(preset_name: str, session: Session) -> tuple:
    """Reset the class set to a preset (or to the model's default)."""
    try:
        if not preset_name or preset_name == MODEL_DEFAULT_PRESET:
            classes = _predictor(_model_of(session)).default_classes()
        else:
            classes = preset(preset_name)
    except ClassSetError as exc:
        raise _error(exc) from exc
    return _apply_classes(session, classes)


def edit_table(rows: Any, session: Session) -> tuple:
    """A cell of the class table was edited: rebuild the set from the rows (keeping compounds)."""
    try:
        classes = classes_from_rows(rows, _classes_of(session), CLASS_LIMITS)
    except ClassSetError as exc:
        gr.Warning(html.escape(str(exc), quote=False))
        return _skip_class_change(classes_message(_classes_of(session), [], error=str(exc)))
    if classes == _classes_of(session):  # e.g. the same cell committed twice (Enter, then blur)
        return _skip_class_change(classes_message(classes, classes.validate(CLASS_LIMITS)))
    return _apply_classes(session, classes)


def add_class(name: str, descriptions: str, session: Session) -> tuple:
    """Add a class (or replace an existing class's descriptions); one description per line."""
    texts = [t.strip() for t in (descriptions or "").splitlines() if t.strip()]
    if not (name or "").strip():
        raise _error("type a class name")
    if not texts:
        raise _error("type at least one description (one per line)")
    try:
        classes = _classes_of(session).with_class(name, texts, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise _error(exc) from exc
    return (*_apply_classes(session, classes), "", "")


def rename_class(old: str, new: str, session: Session) -> tuple:
    """Rename a class or compound (compounds follow)."""
    if not old:
        raise _error("choose the class to rename")
    if not (new or "").strip():
        raise _error("type the new name")
    try:
        classes = _classes_of(session).renamed(old, new, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise _error(exc) from exc
    return (*_apply_classes(session, classes), "")


def remove_class(name: str, session: Session) -> tuple:
    """Remove a class (and the compounds that use it)."""
    return _remove(name, session, "choose the class to remove")


def _remove(name: str, session: Session, missing: str) -> tuple:
    """Remove a class or compound by name and re-score; `missing` is the error for no name."""
    if not name:
        raise _error(missing)
    return _apply_built(session, lambda: _classes_of(session).without(name, limits=CLASS_LIMITS))


def _apply_built(session: Session, build: Callable[[], ClassSet]) -> tuple:
    """Apply the class set `build()` makes; its ClassSetError becomes the user's error message."""
    try:
        classes = build()
    except ClassSetError as exc:
        raise _error(exc) from exc
    return _apply_classes(session, classes)


def validate_classes(text: str, session: Session) -> str:
    """Live validation of the YAML/JSON editor (nothing is applied)."""
    if not (text or "").strip():
        return "Type a class set (YAML or JSON), or reset to a preset."
    try:
        classes = ClassSet.parse(text, limits=CLASS_LIMITS)
        warnings = classes.validate(CLASS_LIMITS)
    except ClassSetError as exc:
        return classes_message(_classes_of(session), [], error=str(exc))
    valid = "Valid (press *Apply YAML/JSON* to use it):"
    return classes_message(classes, warnings).replace("In use:", valid, 1)


def set_classes(text: str, session: Session) -> tuple:
    """Apply the YAML/JSON editor's class set."""
    if not (text or "").strip():
        raise _error("the class set is empty: type YAML or JSON, or reset to a preset")
    return _apply_built(session, lambda: ClassSet.parse(text, limits=CLASS_LIMITS))


def import_classes(file: str | None, session: Session) -> tuple:
    """Load a class set from an uploaded .yaml/.yml/.json file."""
    if not file:
        raise _error("choose a .yaml, .yml or .json file")
    return _apply_built(session, lambda: ClassSet.load(file, limits=CLASS_LIMITS))


def export_classes(fmt: str, session: Session) -> str:
    """Write the session's class set as YAML or JSON for download."""
    classes = _classes_of(session)
    suffix = "json" if fmt == "json" else "yaml"
    path = OUTPUTS.new() / f"{safe_stem(classes.name, 'classes')}.{suffix}"
    try:
        classes.save(path, limits=CLASS_LIMITS)
    except ClassSetError as exc:
        raise _error(exc) from exc
    return str(path)


def _compound_candidate(parts: list[str] | None, weights_text: str, name: str, session: Session):
    parts = list(parts or [])
    if len(parts) < 2:
        raise ClassSetError("choose two or more classes")
    try:
        weights = parse_weights(weights_text, parts)
    except ValueError as exc:
        raise ClassSetError(str(exc)) from exc
    name = (name or "").strip() or " + ".join(parts)
    classes = _classes_of(session)
    candidate = classes.with_compound(name, parts, weights, limits=CLASS_LIMITS)
    return classes, candidate, name, weights, parts


def preview_compound(parts: list[str] | None, weights_text: str, name: str,
                     session: Session) -> str:
    """Preview a compound: its nearest classes and its score on the current video."""
    if len(parts or []) < 2:
        return "Choose two or more classes to preview a compound."
    try:
        classes, candidate, name, weights, parts = _compound_candidate(
            parts, weights_text, name, session)
    except ClassSetError as exc:
        return f"**Cannot build it:** {md(exc)}"
    video = session.video
    model = video.model if video is not None else _model_of(session)
    predictor = _predictor(model, video.fallback if video else "center")
    name = next(c.name for c in candidate.compounds if c.name.casefold() == name.strip().casefold())
    encoding = video.encoding if video else None
    preview = compound_preview(predictor, classes, candidate, name, encoding)
    return preview_markdown(name, preview, weights, parts)


def add_compound(parts: list[str] | None, weights_text: str, name: str, session: Session) -> tuple:
    """Add the compound (or replace the one of that name) and re-score."""
    try:
        _, candidate, name, _, _ = _compound_candidate(parts, weights_text, name, session)
    except ClassSetError as exc:
        raise _error(exc) from exc
    return (*_apply_classes(session, candidate), f"Added compound **{md(name)}**.")


def remove_compound(name: str, session: Session) -> tuple:
    """Remove a compound."""
    return _remove(name, session, "there is no compound to remove")


# -------------------------------------------------------------------------------- explorer


def _example_embeddings(model: str, progress: Any) -> list[tuple[Path, np.ndarray]]:
    """Clip embeddings of the example clips under `model` (shared: examples are public assets)."""
    out = []
    predictor = _predictor(model, "center")
    for i, path in enumerate(EXAMPLES):
        key = (model, str(path))
        if key not in _EXAMPLE_EMBEDDINGS:
            progress(i / max(len(EXAMPLES), 1), desc=f"encoding example {path.name}")
            try:
                _EXAMPLE_EMBEDDINGS[key] = predictor.encode(path).clip_embedding.numpy().copy()
            except _user_errors():
                continue
        out.append((path, _EXAMPLE_EMBEDDINGS[key]))
    return out


def _hover(name: str, probs: np.ndarray, names: list[str]) -> str:
    """Plain-text hover (the figure escapes it): the clip and its top-3."""
    top = np.argsort(-probs)[:3]
    return f"{name}\n" + "\n".join(f"{names[j]}: {probs[j]:.1%}" for j in top)


def _unique_ids(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i} #{seen[i]}")
    return out


@gpu
def explore(method: str, include_examples: bool, upload: str | None, session: Session,
            progress=gr.Progress()) -> tuple:
    """Project the session's clips, the examples, uploaded embeddings and the class prototypes."""
    from emoclip import explore as ex

    model = _model_of(session)
    predictor = _predictor(model)
    classes = _classes_of(session)
    names = classes.names
    clips: list[tuple[str, str, np.ndarray, str | None]] = []  # (kind, name, embedding, media)
    clips += [("clip", f"clip {i + 1} · {c.name}", c.embedding, c.path)
              for i, c in enumerate(c for c in session.clips if c.model == model)]
    if include_examples:
        clips += [("example", f"example · {p.name}", e, str(p))
                  for p, e in _example_embeddings(model, progress)]
    if upload:
        try:
            loaded = ex.load_embeddings(upload, expected_dim=predictor.model.embed_dim,
                                        kind="uploaded")
        except ValueError as exc:
            raise _error(f"could not use the embeddings file: {exc}", upload) from exc
        clips += [("uploaded", f"uploaded · {p.id}", p.embedding, None) for p in loaded]
    text = predictor.class_embeddings(classes).numpy()
    n_classes = len(classes.classes)
    proto_kinds = ["class" if j < n_classes else "compound" for j in range(len(names))]
    kinds = [c[0] for c in clips] + proto_kinds
    ids = _unique_ids([c[1] for c in clips] + [f"{k} · {n}" for k, n in zip(proto_kinds, names)])
    points = []
    if clips:
        matrix = np.stack([np.asarray(c[2], dtype=np.float32) for c in clips])
        probs = predictor.score_embeddings(matrix, classes)
        for i, ((kind, name, emb, media), pr) in enumerate(zip(clips, probs)):
            points.append(ex.LatentPoint(id=ids[i], kind=kind, label=names[int(np.argmax(pr))],
                                         embedding=np.asarray(emb, dtype=np.float32),
                                         hover=_hover(name, pr, names), media=media))
    for j, name in enumerate(names):
        kind = kinds[len(clips) + j]
        points.append(ex.LatentPoint(id=ids[len(clips) + j], kind=kind, label=name,
                                     embedding=text[j],
                                     hover=f"text prototype of the {kind} {name}"))
    if len(points) < 3:
        raise _error("need at least 3 points: analyse a clip or add classes")
    progress(0.9, desc=f"{method} projection")
    try:
        coords = ex.project(np.stack([p.embedding for p in points]), method=_method(method), seed=0)
    except ValueError as exc:
        raise _error(exc) from exc
    session.points, session.coords, session.projection = points, coords, method
    n_clip = len(clips)
    title = f"{method} of {n_clip} clip(s) and {len(names)} text prototypes ({model})"
    fig = ex.latent_figure(points, coords, title=title)
    msg = (f"{n_clip} clip(s) and {len(names)} text prototypes under {code(model)}; "
           "colour = predicted class. "
           + ("Analyse clips to add them." if not session.clips else ""))
    return session, fig, gr.Dropdown(choices=[p.id for p in points], value=None), msg


def _method(label: str) -> str:
    return {"PCA": "pca", "t-SNE": "tsne", "UMAP": "umap"}.get(label, label.lower())


def pick_point(point_id: str, session: Session) -> tuple:
    """A point is picked: its nearest neighbours (cosine), its clip, the plot highlighting it."""
    from emoclip import explore as ex

    points = session.points
    ids = [p.id for p in points]
    if not point_id or point_id not in ids:
        return [], None, "Pick a point (run the projection first).", gr.skip()
    index = ids.index(point_id)
    emb = np.stack([p.embedding for p in points])
    neighbours = ex.nearest_neighbours(emb, index, k=min(8, len(points) - 1))
    rows = [[points[j].id, points[j].kind, points[j].label, round(float(c), 4)]
            for j, c in neighbours]
    p = points[index]
    media = p.media if p.media and Path(p.media).is_file() else None
    role = "class" if p.is_prototype else "predicted"
    info = f"**{md(p.id)}** ({md(p.kind)}; {role} *{md(p.label)}*)"
    fig = ex.latent_figure(points, session.coords, title=f"{session.projection}: {p.id}",
                           selected=index)
    return rows, media, info, fig


def export_embeddings(session: Session) -> str:
    """Write the explorer's points (embeddings, labels) for download; re-uploadable here."""
    from emoclip import explore as ex

    if not session.points:
        raise _error("run the projection first")
    path = OUTPUTS.new() / "emoclip-embeddings.npz"
    ex.save_embeddings(path, session.points)
    return str(path)


# ----------------------------------------------------------------------------------- API


@gpu
def classify_video(video: str | None, classes: str, session: Session) -> dict:
    """Classify a video file against a class set given as YAML or JSON text.

    Empty `classes` means the session's current set (the model's default preset for a new
    client). Returns model, classes, probabilities, top, timeline (windows), tracks, faces
    (frames with and without a face), video metadata, timings and warnings.
    """
    if not video:
        raise _error("no video file was given")
    try:
        if (classes or "").strip():
            class_set = ClassSet.parse(classes, limits=CLASS_LIMITS)
        else:
            class_set = _classes_of(session)
        model = _model_of(session)
        prediction = _predictor(model, "center").predict(video, class_set)
    except _user_errors() as exc:
        raise _error(exc, video) from exc
    result = prediction.to_dict()
    result.pop("embedding", None)
    return result


@gpu
def classify_image(image: str | None, classes: str, session: Session) -> dict:
    """Classify every face of a photo (JPEG, PNG, WebP, BMP, TIFF) against a class set.

    As `classify_video` (which also accepts a photo), with one entry per face in ``tracks``
    (``box`` = [x, y, w, h] in pixels of the upright photo), largest first; the top-level
    probabilities are the largest face's and the timeline is empty.
    """
    if not image:
        raise _error("no image file was given")
    return classify_video(image, classes, session)


# ----------------------------------------------------------------------------------- layout

ABOUT = """
## How EmoCLIP works
EmoCLIP (Foteinopoulou & Patras, *EmoCLIP: A Vision-Language Method for Zero-Shot Video Facial
Expression Recognition*, FG 2024) is CLIP with a temporal transformer. Each sampled frame's face
crop goes through CLIP's image encoder (ViT-B/32); a transformer over T = 32 frame embeddings
turns them into one video embedding. CLIP's text encoder embeds a natural-language **description**
of each emotion class. The video is scored against every class by the cosine between its
embedding and the description's embedding (softmax over classes). It was trained contrastively on
MAFW's sample-level captions, so classes are just text: you can write new descriptions, add
classes the model never saw, and combine classes into **compounds** (the normalised mean of their
text embeddings). Editing classes re-scores a video without re-encoding it.

## Published zero-shot results (UAR / WAR, %)

| Method (backbone) | DFEW | FERV39k | MAFW | AFEW |
|---|---|---|---|---|
| CLIP ViT-B/32 (class prompts) | 22.08 / 21.30 | 18.12 / 17.38 | 13.39 / 15.48 | 28.59 / 28.87 |
| CLIP ViT-B/16 | 22.92 / 28.33 | 19.81 / 22.51 | 15.45 / 17.25 | 28.21 / 29.13 |
| CLIP ViT-L/14 | 32.02 / 38.12 | 21.97 / 28.99 | 20.42 / 25.58 | 35.50 / 38.32 |
| FaRL (ViT-B/16) | 23.99 / 25.73 | 20.71 / 22.87 | 14.98 / 17.08 | 28.17 / 30.45 |
| EmotionCLIP (CVPR 2023) | 13.77 / 19.89 | 14.79 / 19.54 | 9.20 / 11.65 | 14.86 / 17.06 |
| **EmoCLIP (ViT-B/32 + temporal)** | **36.76/46.27** | 26.73/35.30 | 25.86/33.49 \* | 36.13/39.90 |
| Exp-CLIP ViT-L/14 | 40.16 / 47.09 | 27.45 / 31.07 | 23.95 / 26.98 | 38.72 / 40.42 |

Source: the consolidated tables of Exp-CLIP (WACV 2025, arXiv 2405.19100), which reproduce
EmoCLIP's numbers. UAR is the mean per-class recall, WAR the overall accuracy.
\* EmoCLIP is trained on MAFW's captions, so its MAFW row is not cross-dataset.

**Zero-shot facial-expression recognition is hard.** Even the paper's model labels only a third
to a half of in-the-wild clips correctly (WAR 33-46 %; with DFEW's 7 classes chance UAR is 14 %),
its scores depend on the wording of the descriptions, and expressions are not emotions: a face
shows what a person displays, not what they feel. Use it to explore, not to judge people.

## Getting the real EmoCLIP weights
1. Download the authors' released checkpoint (the "downstream task weights" link in the README of
   [NickyFot/EmoCLIP](https://github.com/NickyFot/EmoCLIP); it is a full VClip state dict).
2. Convert it: `emoclip convert AUTHORS.pth weights/emoclip-vitb32.safetensors` (this needs the
   OpenAI CLIP ViT-B/32 weights from open_clip, downloaded once).
3. Restart `python app.py`: local EmoCLIP weights are preferred over every other model.

Or set `EMOCLIP_HUB_REPO` to a Hugging Face repo you trust with `emoclip-vitb32.safetensors` + `.json`
(this project publishes none yet) and pin it with `EMOCLIP_HUB_REVISION` set to a commit hash.
The CLIP baseline (`clip-vitb32`) needs only open_clip's OpenAI weights (one download). Offline,
the app runs the synthetic toy model from `weights/`. See the README for training your own.
"""

API_HELP = """
### Use the app from Python
```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860/")
classes = "classes:\\n  joy: a broad smile\\n  calm: a relaxed face\\n"
result = client.predict(handle_file("clip.mp4"), classes, api_name="/classify_video")
print(result["top"], result["probabilities"])
photo = client.predict(handle_file("group.jpg"), classes, api_name="/classify_image")
print([(face["box"], face["top"]) for face in photo["tracks"]])  # one per face, largest first
```
Leave the class text empty to use the model's default class set. Other endpoints: `/analyse`,
`/set_classes`, `/add_compound`, `/explore`, ... (see "Use via API" at the bottom of the page).
"""

CSS = """
#model-status { min-height: 3em; }
#faces-gallery .thumbnail-item { min-width: 64px; }
.warning-banner:has(li) { background: #fff4ce; border: 1px solid #e0a800; border-left: 6px solid #e0a800;
  border-radius: 6px; padding: 0.4em 0.9em; color: #3d2c00; }
"""


def _header() -> SimpleNamespace:
    gr.Markdown("# EmoCLIP: zero-shot facial-expression recognition in video\n"
                "Describe emotions in words; the model scores a face video against your "
                "descriptions.")
    with gr.Row(equal_height=True):
        status = gr.Markdown("Loading a model…", elem_id="model-status")
        model = gr.Dropdown(label="Model", choices=[], interactive=True, scale=0, min_width=280,
                            elem_id="model-select")
    return SimpleNamespace(status=status, model=model)


def _analyse_tab() -> SimpleNamespace:
    ui = SimpleNamespace(examples=None)
    with gr.Row():
        with gr.Column(scale=2):
            ui.video = gr.Video(label="Video: upload or record", sources=["upload", "webcam"],
                                elem_id="video-input", height=320)
            ui.fallback = gr.Radio(
                ["center", "skip"], value="center", label="Frames without a face",
                info="center: analyse the centre of the whole frame; skip: leave them out",
                elem_id="fallback")
            ui.analyse = gr.Button("Analyse", variant="primary", elem_id="analyse-btn")
            with gr.Accordion("…or a photo: every face is scored", open=False, elem_id="photo-box"):
                ui.image = gr.Image(label="Photo (JPEG, PNG, WebP, BMP, TIFF)", type="filepath",
                                    sources=["upload", "clipboard"], elem_id="image-input", height=260)
                ui.analyse_image = gr.Button("Analyse photo", elem_id="analyse-image-btn")
                ui.faces_image = gr.Image(label="Faces found (numbered, largest first)", interactive=False,
                                          elem_id="faces-image", height=320)
                ui.faces = gr.Markdown(elem_id="faces-list")
            if EXAMPLES:
                ui.examples = gr.Examples(
                    [[str(p)] for p in EXAMPLES], inputs=[ui.video],
                    example_labels=[p.name for p in EXAMPLES],
                    label="Example clips (click one to analyse it)", elem_id="examples")
            ui.gallery = gr.Gallery(label="What the model saw along the clip (face crops)", columns=4, height="auto",
                                    elem_id="faces-gallery", allow_preview=False)
        with gr.Column(scale=3):
            ui.summary = gr.Markdown("Upload a clip and press **Analyse**.",
                                     elem_id="result-summary")
            # above the result, styled as a banner: a label of a face-less clip is not a finding
            ui.warnings = gr.Markdown(elem_id="result-warnings", elem_classes=["warning-banner"])
            ui.label = gr.Label(label="Top emotions", num_top_classes=5, elem_id="top-label")
            ui.bars = gr.Plot(label="Probabilities", elem_id="bars-plot")
            ui.timeline = gr.Plot(label="Timeline", elem_id="timeline-plot")
            ui.timings = gr.Markdown(elem_id="timings")
            ui.files = gr.File(label="Downloads (JSON, CSV)", file_count="multiple",
                               interactive=False, elem_id="downloads")
    return ui


def _live_tab() -> SimpleNamespace:
    ui = SimpleNamespace()
    gr.Markdown("Each processed frame's face is embedded into a ring buffer of the last T frames; "
                "the prediction is over that buffer, with the class set of the *Classes* tab.")
    with gr.Row():
        with gr.Column():
            ui.cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                              elem_id="live-cam", height=320)
            ui.info = gr.Markdown("Start the webcam to stream.", elem_id="live-fps")
            ui.reset = gr.Button("Clear buffer", size="sm", elem_id="live-reset")
        with gr.Column():
            ui.label = gr.Label(label="Last T frames", num_top_classes=5, elem_id="live-label")
            ui.plot = gr.Plot(label="Live timeline", elem_id="live-plot")
    return ui


def _class_editor() -> SimpleNamespace:
    ui = SimpleNamespace()
    with gr.Row():
        ui.preset = gr.Dropdown([MODEL_DEFAULT_PRESET, *preset_names()], value=MODEL_DEFAULT_PRESET,
                                label="Preset", elem_id="preset")
        ui.reset = gr.Button("Reset to preset", elem_id="reset-classes-btn", scale=0)
    ui.message = gr.Markdown(elem_id="class-messages")
    ui.table = gr.Dataframe(
        headers=["class", "description"], datatype=["str", "str"], column_count=2,
        interactive=True, wrap=True, max_height=420, column_widths=["22%", "78%"],
        label="Classes: one row per description (edit a cell, add rows)", elem_id="class-table")
    with gr.Accordion("Add, rename or remove a class", open=True):
        with gr.Row():
            ui.new_name = gr.Textbox(label="New class name", elem_id="new-class-name")
            ui.new_desc = gr.Textbox(label="Descriptions (one per line)", lines=2, scale=2,
                                     elem_id="new-class-desc")
            ui.add = gr.Button("Add class", elem_id="add-class-btn", scale=0)
        with gr.Row():
            ui.pick = gr.Dropdown(label="Class", choices=[], elem_id="class-pick")
            ui.rename_to = gr.Textbox(label="Rename to", elem_id="rename-to")
            ui.rename = gr.Button("Rename", elem_id="rename-btn", scale=0)
            ui.remove = gr.Button("Remove", variant="stop", elem_id="remove-btn", scale=0)
    with gr.Accordion("YAML / JSON: edit, import, export", open=False):
        ui.yaml = gr.Code(language="yaml", label="Class set (YAML or JSON)", interactive=True,
                          elem_id="class-yaml", lines=12)
        with gr.Row():
            ui.apply_yaml = gr.Button("Apply YAML/JSON", variant="primary",
                                      elem_id="apply-yaml-btn")
            ui.export_yaml = gr.Button("Export YAML", elem_id="export-yaml-btn")
            ui.export_json = gr.Button("Export JSON", elem_id="export-json-btn")
        with gr.Row():
            ui.import_file = gr.File(label="Import a .yaml/.yml/.json class set", type="filepath",
                                     file_types=[".yaml", ".yml", ".json"], height=120,
                                     elem_id="import-classes")
            ui.export_file = gr.File(label="Exported class set", interactive=False, height=120,
                                     elem_id="export-classes")
    return ui


def _compound_builder() -> SimpleNamespace:
    ui = SimpleNamespace()
    gr.Markdown("### Current video")
    ui.label = gr.Label(label="Scores with these classes (all classes and compounds)",
                        elem_id="classes-label")
    ui.rescore = gr.Markdown(elem_id="rescore-info")
    gr.Markdown("### Compound builder\n"
                "A compound is the normalised (weighted) mean of its classes' text embeddings.")
    ui.parts = gr.CheckboxGroup(label="Classes to combine (2 or more)", choices=[],
                                elem_id="compound-parts")
    with gr.Row():
        ui.weights = gr.Textbox(label="Weights (optional, one per class in order)",
                                placeholder="e.g. 2, 1", elem_id="compound-weights")
        ui.name = gr.Textbox(label="Name", placeholder="e.g. happily surprised",
                             elem_id="compound-name")
    ui.preview = gr.Markdown("Choose two or more classes to preview a compound.",
                             elem_id="compound-preview")
    ui.add = gr.Button("Add compound", variant="primary", elem_id="add-compound-btn")
    with gr.Row():
        ui.pick = gr.Dropdown(label="Compound", choices=[], elem_id="compound-pick")
        ui.remove = gr.Button("Remove compound", variant="stop", scale=0,
                              elem_id="remove-compound-btn")
    return ui


def _explorer_tab() -> SimpleNamespace:
    ui = SimpleNamespace()
    with gr.Row():
        ui.method = gr.Radio(["PCA", "t-SNE", "UMAP"], value="PCA", label="Projection (seed 0)",
                             elem_id="explore-method")
        ui.examples = gr.Checkbox(value=bool(EXAMPLES), label="Include the example clips",
                                  interactive=bool(EXAMPLES), elem_id="explore-examples")
        ui.upload = gr.File(label="Add embeddings (.npz/.json/.csv/.npy, e.g. exported here)",
                            type="filepath", file_types=[".npz", ".json", ".csv", ".npy"],
                            height=140, elem_id="explore-upload")
        ui.run = gr.Button("Project", variant="primary", elem_id="explore-btn", scale=0)
    ui.info = gr.Markdown("Clips you analyse are added here, with the text prototype of every "
                          "class and compound.", elem_id="explore-info")
    ui.plot = gr.Plot(label="Latent space", elem_id="latent-plot")
    with gr.Row():
        with gr.Column():
            ui.pick = gr.Dropdown(label="Pick a point", choices=[], elem_id="point-pick")
            ui.point = gr.Markdown(elem_id="point-info")
            ui.neighbours = gr.Dataframe(
                headers=["point", "kind", "predicted / label", "cosine"], interactive=False,
                label="Nearest neighbours (cosine)", elem_id="neighbours")
            ui.export = gr.Button("Export embeddings", elem_id="export-emb-btn")
            ui.file = gr.File(label="Embeddings", interactive=False, height=80, elem_id="emb-file")
        ui.video = gr.Video(label="The point's clip", interactive=False, height=260,
                            elem_id="point-video")
    return ui


def _about_tab() -> SimpleNamespace:
    ui = SimpleNamespace()
    gr.Markdown(ABOUT)
    ui.card = gr.Markdown(elem_id="model-card")
    gr.Markdown(API_HELP)
    with gr.Accordion("Try the classify_video endpoint", open=False):
        with gr.Row():
            ui.video = gr.File(label="Video file", type="filepath", elem_id="api-video")
            ui.classes = gr.Textbox(label="Class set (YAML or JSON; empty: current set)", lines=6,
                                    elem_id="api-classes")
        ui.run = gr.Button("Classify", elem_id="api-btn")
        ui.image = gr.File(label="Photo (classify_image)", type="filepath", elem_id="api-image")
        ui.run_image = gr.Button("Classify photo", elem_id="api-image-btn")
        ui.result = gr.JSON(label="Result", elem_id="api-result")
    return ui


def delete_cache_policy(seconds: float | None = None) -> tuple[int, int] | None:
    """gradio's `delete_cache` (every `frequency` s, delete uploads and output copies older than
    `age` s): without it gradio's cache grows with every upload and download, forever."""
    seconds = FILES_SECONDS if seconds is None else seconds
    if seconds is None:
        return None
    age = max(1, int(seconds))
    return (max(1, min(600, age // 2)), age)


def build_demo(delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The Blocks UI (no model work here: models load when a page opens or at `MODELS.start()`).

    `delete_cache`: gradio's (frequency, age) in seconds; default `delete_cache_policy()`.
    """
    with gr.Blocks(title="EmoCLIP: zero-shot facial expressions in video",
                   delete_cache=delete_cache or delete_cache_policy()) as demo:
        session = gr.State(Session())
        live_buffer = gr.State(LiveBuffer())
        timer = gr.Timer(1.0, active=False)
        head = _header()
        with gr.Tabs():
            with gr.Tab("Analyse video", id="analyse"):
                an = _analyse_tab()
            with gr.Tab("Live webcam", id="live"):
                live = _live_tab()
            with gr.Tab("Classes & compounds", id="classes"):
                with gr.Row():
                    with gr.Column(scale=3):
                        ed = _class_editor()
                    with gr.Column(scale=2):
                        cb = _compound_builder()
            with gr.Tab("Latent explorer", id="explorer"):
                ex = _explorer_tab()
            with gr.Tab("About", id="about"):
                about = _about_tab()
        _wire(demo, session, live_buffer, timer, head, an, live, ed, cb, ex, about)
    return demo


def _wire(demo, session, live_buffer, timer, head, an, live, ed, cb, ex, about) -> None:
    """Event wiring. Output lists match `_status_values`, `_editor_values`, `_result_values`."""
    status = [session, head.status, head.model, about.card, timer]
    editor = [ed.table, ed.yaml, ed.message, ed.pick, cb.parts, cb.pick]
    result = [an.summary, an.label, an.bars, an.timeline, an.gallery, an.files, an.timings,
              an.warnings, cb.label, cb.rescore]
    change = [session, *editor, *result]  # every class-set change
    ui_only = dict(show_progress="hidden", api_visibility="private", concurrency_limit=None)
    model_work = dict(concurrency_id="model")  # analyses share the default concurrency limit

    demo.load(init_page, [session], [*status, *editor], **ui_only)
    timer.tick(poll_models, [session], [*status, *editor], **ui_only)
    head.model.input(select_model, [head.model, session], [*status, *editor],
                     api_name="select_model").then(
        analyse_if_loaded, [an.video, an.fallback, session], [session, *result],
        api_visibility="private", **model_work)

    analyse_inputs = [an.video, an.fallback, session]
    an.analyse.click(analyse, analyse_inputs, [session, *result], api_name="analyse", **model_work)
    an.analyse_image.click(analyse_photo, [an.image, an.fallback, session],
                           [session, *result, an.faces_image, an.faces], api_name="analyse_image", **model_work)
    if an.examples is not None:
        an.examples.load_input_event.then(analyse, analyse_inputs, [session, *result],
                                          api_visibility="private", **model_work)

    live_outputs = [live.label, live.plot, live.info, live_buffer]
    live.cam.stream(live_step, [live.cam, live_buffer, session], live_outputs, stream_every=0.5,
                    time_limit=LIVE_SECONDS, concurrency_limit=4, concurrency_id="live",
                    show_progress="hidden", api_name="live_step")
    live.reset.click(reset_live, [live_buffer], live_outputs, api_name="reset_live")

    ed.reset.click(reset_classes, [ed.preset, session], change, api_name="reset_classes")
    ed.table.input(edit_table, [ed.table, session], change, api_name="edit_classes_table",
                   trigger_mode="always_last")
    ed.add.click(add_class, [ed.new_name, ed.new_desc, session],
                 [*change, ed.new_name, ed.new_desc], api_name="add_class")
    ed.rename.click(rename_class, [ed.pick, ed.rename_to, session], [*change, ed.rename_to],
                    api_name="rename_class")
    ed.remove.click(remove_class, [ed.pick, session], change, api_name="remove_class")
    ed.yaml.input(validate_classes, [ed.yaml, session], [ed.message], api_name="validate_classes",
                  show_progress="hidden", trigger_mode="always_last", concurrency_limit=None)
    ed.apply_yaml.click(set_classes, [ed.yaml, session], change, api_name="set_classes")
    ed.import_file.upload(import_classes, [ed.import_file, session], change,
                          api_name="import_classes")
    ed.export_yaml.click(functools.partial(export_classes, "yaml"), [session], [ed.export_file],
                         api_name="export_classes_yaml")
    ed.export_json.click(functools.partial(export_classes, "json"), [session], [ed.export_file],
                         api_name="export_classes_json")

    compound = [cb.parts, cb.weights, cb.name, session]
    gr.on([cb.parts.input, cb.weights.input, cb.name.input], preview_compound, compound,
          [cb.preview], api_name="preview_compound", show_progress="hidden",
          trigger_mode="always_last")
    cb.add.click(add_compound, compound, [*change, cb.preview], api_name="add_compound")
    cb.remove.click(remove_compound, [cb.pick, session], change, api_name="remove_compound")

    ex.run.click(explore, [ex.method, ex.examples, ex.upload, session],
                 [session, ex.plot, ex.pick, ex.info], api_name="explore", **model_work)
    ex.pick.input(pick_point, [ex.pick, session], [ex.neighbours, ex.video, ex.point, ex.plot],
                  api_name="pick_point")
    ex.export.click(export_embeddings, [session], [ex.file], api_name="export_embeddings")

    about.run.click(classify_video, [about.video, about.classes, session], [about.result],
                    api_name="classify_video", **model_work)
    about.run_image.click(classify_image, [about.image, about.classes, session], [about.result],
                          api_name="classify_image", **model_work)


def launch_options() -> dict[str, Any]:
    """Arguments for `demo.launch` (upload limit, session-state bound, example clips readable)."""
    return dict(
        max_file_size=None if MAX_UPLOAD_MB is None else f"{int(MAX_UPLOAD_MB)}mb",
        state_session_capacity=MAX_SESSIONS,
        allowed_paths=[str(ASSETS)],
        css=CSS,
    )


demo = build_demo()
demo.queue(**QUEUE)

def main(argv: list[str]) -> None:
    """``python app.py [--verbose]``: serve the app until Ctrl+C.

    The terminal shows the URL and the app's own messages only: native libraries' log lines
    (MediaPipe/LiteRT, absl, FFmpeg) and gradio's other start-up lines are silenced unless
    ``--verbose`` or ``EMOCLIP_LOG_LEVEL=debug``.
    """
    from emoclip.quiet import native_logs_enabled, silence_native_stderr

    if "--verbose" in argv:
        os.environ["EMOCLIP_LOG_LEVEL"] = "debug"
    verbose = native_logs_enabled()
    if not verbose:
        silence_native_stderr()
    MODELS.start()  # discover and load models in the background; the page serves meanwhile
    _, url, _ = demo.queue(**QUEUE).launch(quiet=not verbose, prevent_thread_lock=True,
                                           **launch_options())
    if not verbose:  # gradio printed nothing: the one line a user needs
        print(f"* Running on local URL:  {str(url).rstrip('/')}", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
