"""The Analyse tab: a video or a photo in, the emotions out (summary, bars, timeline, files).

The video is encoded once (the predictor caches the encoding by content) and scored against
the session's class set; the Classes tab re-scores it without re-encoding.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from .. import settings
from ..errors import code, error, md, no_dead_end, user_errors
from ..evidence_view import evidence_markdown, mark_key_moments
from ..figures import (
    TOP_K,
    bars_figure,
    bars_summary,
    timeline_figure,
    timeline_summary,
)
from ..files import download_files
from ..models import classes_of, gpu, is_toy, model_of, predictor
from ..outputs import Analysed, components, skipped
from ..settings import MAX_SESSION_CLIPS
from ..state import Clip, CurrentVideo, Session
from . import faces

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.media.inputs import MediaInput
    from emoclip.results import Prediction


# ---------------------------------------------------------------------------------- layout


def layout(ui: Any) -> None:
    """The tab's components, added to `ui` (inputs on the left, results on the right)."""
    ui.examples = None
    examples = settings.EXAMPLES
    with gr.Row():
        with gr.Column(scale=2):
            ui.video = gr.Video(
                label="Video: upload or record",
                sources=["upload", "webcam"],
                elem_id="video-input",
                height=320,
            )
            ui.fallback = gr.Radio(
                ["center", "skip"],
                value="center",
                label="Frames without a face",
                info="center: analyse the centre of the whole frame; skip: leave them out",
                elem_id="fallback",
            )
            ui.analyse_btn = gr.Button("Analyse", variant="primary", elem_id="analyse-btn")
            ui.photo_box = gr.Accordion("…or a photo", open=False, elem_id="photo-box")
            with ui.photo_box:
                ui.image = gr.Image(
                    label="Photo (JPEG, PNG, WebP, BMP, TIFF)",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    elem_id="image-input",
                    height=260,
                )
                ui.analyse_image_btn = gr.Button("Analyse photo", elem_id="analyse-image-btn")
                faces.layout(ui)
            if examples:
                ui.examples = gr.Examples(
                    [[str(p)] for p in examples],
                    inputs=[ui.video],
                    example_labels=[p.name for p in examples],
                    label="Example clips (click one to analyse it)",
                    elem_id="examples",
                )
            ui.gallery = gr.Gallery(
                label="What the model saw along the clip",
                columns=4,
                height="auto",
                elem_id="faces-gallery",
                allow_preview=False,
            )
        with gr.Column(scale=3):
            ui.summary = gr.Markdown(
                "Upload a clip and press **Analyse**.", elem_id="result-summary"
            )
            # above the result, styled as a banner: a label of a face-less clip is not a finding
            ui.warnings = gr.Markdown(elem_id="result-warnings", elem_classes=["warning-banner"])
            ui.label = gr.Label(label="Top emotions", num_top_classes=5, elem_id="top-label")
            ui.evidence = gr.Markdown(elem_id="result-evidence")  # why: words, margin, moments
            ui.bars = gr.Plot(label="Probabilities", elem_id="bars-plot")
            ui.bars_text = gr.Markdown(elem_id="bars-text", elem_classes=["plot-text"])
            ui.show_all = gr.Checkbox(
                label=f"Show all classes (bars and timeline show the top {TOP_K} otherwise)",
                value=False,
                elem_id="show-all",
            )
            with gr.Column(elem_id="timeline-box") as ui.timeline_box:  # hidden for a photo
                ui.timeline = gr.Plot(label="Timeline", elem_id="timeline-plot")
                ui.timeline_text = gr.Markdown(elem_id="timeline-text", elem_classes=["plot-text"])
            ui.timings = gr.Markdown(elem_id="timings")
            ui.files = gr.File(
                label="Downloads (JSON, CSV)",
                file_count="multiple",
                interactive=False,
                elem_id="downloads",
            )


def failed(text: str) -> dict[str, str]:
    """The mark of a failed analysis: the summary says so (the next result replaces it)."""
    return dict(
        summary=f"⚠ **Not analysed:** {md(text)}  \n"
        "Any result below is still the last clip's that was analysed."
    )


def wire(ui: Any, model_work: dict[str, Any]) -> None:
    """The tab's events (`model_work`: the options of events that run a model)."""
    inputs = [ui.video, ui.fallback, ui.session]
    page_analyse = no_dead_end(analyse, Analysed, failed)
    ui.analyse_btn.click(
        page_analyse, inputs, components(ui, Analysed), api_name="analyse", **model_work
    )
    ui.analyse_image_btn.click(
        no_dead_end(analyse_photo, Analysed, failed),
        [ui.image, ui.fallback, ui.session],
        components(ui, Analysed),
        api_name="analyse_image",
        **model_work,
    )
    ui.show_all.input(
        show_all_classes,
        [ui.show_all, ui.session],
        [ui.session, ui.bars, ui.timeline],
        api_name="show_all_classes",
        show_progress="hidden",
    )
    if ui.examples is not None:
        ui.examples.load_input_event.then(
            page_analyse,
            inputs,
            components(ui, Analysed),
            api_visibility="private",
            **model_work,
        )


def controls_for(detection: bool | None) -> dict[str, Any]:
    """The tab's controls and captions for a model with or without face `detection` (None: no
    model yet, left as they are): a control that does nothing is disabled with the reason."""
    if detection is None:
        return dict(fallback=gr.skip(), gallery=gr.skip(), photo_box=gr.skip())
    if detection:
        return dict(
            fallback=gr.Radio(
                interactive=True,
                info="center: analyse the centre of the whole frame; skip: leave them out",
            ),
            gallery=gr.Gallery(label="What the model saw along the clip (face crops)"),
            photo_box=gr.Accordion(label="…or a photo: each face found is scored"),
        )
    return dict(
        fallback=gr.Radio(
            interactive=False,
            info="Not used by this model: it takes whole frames (no face detection)",
        ),
        gallery=gr.Gallery(label="What the model saw along the clip (whole frames)"),
        photo_box=gr.Accordion(label="…or a photo (scored as a whole frame)"),
    )


# ---------------------------------------------------------------------------------- handlers


def _resolved(pred: EmotionPredictor, path: str) -> MediaInput:
    """What the upload at `path` is, checked against `pred`'s limits, as `pred` would resolve it."""
    from emoclip.media.inputs import resolve_input

    st = pred.settings
    return resolve_input(path, frame_folder_fps=st.frame_folder_fps, limits=st.limits)


@gpu
def analyse(
    video_path: str | None, fallback: str, session: Session, progress=gr.Progress()
) -> Analysed:
    """Analyse a video: encode it once (cached), score it against the session's class set."""
    if not video_path:
        raise error("Upload or record a video first (or click an example).", validation=True)
    pred = predictor(model_of(session), fallback or "center")
    try:
        media = _resolved(pred, video_path)  # what it is, limits checked: resolved once
    except user_errors() as exc:
        raise error(exc, video_path) from exc
    return _analysed(pred, media, video_path, fallback, session, progress)


def _analysed(
    pred: EmotionPredictor,
    media: MediaInput,
    video_path: str,
    fallback: str,
    session: Session,
    progress: Any,
) -> Analysed:
    """Encode a resolved input (cached), score it, and make it the session's current video."""
    name = model_of(session)
    classes = classes_of(session)
    fresh = []

    def report(fraction: float, message: str) -> None:
        fresh.append(fraction)
        progress(fraction, desc=message)

    progress(0.0, desc="reading the video")
    try:
        encoding = pred.encode(media, progress=report)
        prediction = pred.score(encoding, classes)
    except user_errors() as exc:
        raise error(exc, video_path) from exc
    encoded_now = bool(fresh)
    if encoded_now:
        session.frames_encoded += int(len(encoding.frame_embeddings))
        session.encodings += 1
    clip_name = prediction.video.get("name") or Path(video_path).name
    fallback = fallback or "center"
    current = CurrentVideo(video_path, clip_name, name, fallback, encoding, prediction)
    if media.kind == "photo":  # shown with its faces' boxes; a new photo shows its first face
        current.photo, current.photo_scale = faces.kept_photo(media.data.image)
    session.video = current
    if not any(c.key == encoding.key for c in session.clips):
        embedding = prediction.embedding.copy()
        session.clips.append(Clip(encoding.key, clip_name, name, video_path, embedding))
        del session.clips[:-MAX_SESSION_CLIPS]
    return result_values(session, encoded_now=encoded_now, gallery=True, image=True)


@gpu
def analyse_photo(
    image_path: str | None, fallback: str, session: Session, progress=gr.Progress()
) -> Analysed:
    """Analyse a photo: every face scored (verified first, then largest), the first one's result
    shown; the photo comes back with numbered boxes ((H, W, 3) uint8 RGB), a table row per face
    and the face selector (`face_pick` shows another face's result).
    """
    if not image_path:
        raise error("Upload a photo first (JPEG, PNG, WebP, BMP or TIFF).", validation=True)
    pred = predictor(model_of(session), fallback or "center")
    try:
        media = _resolved(pred, image_path)  # limits and bad files checked here, decoded once
    except user_errors() as exc:
        raise error(exc, image_path) from exc
    if media.kind != "photo":
        raise error(f"{Path(image_path).name} is a video: use the video box above")
    return _analysed(pred, media, image_path, fallback, session, progress)


def show_all_classes(show_all: bool, session: Session) -> tuple[Session, Any, Any]:
    """Draw every class (or the top `TOP_K`) in the bars and the timeline."""
    session.show_all = bool(show_all)
    video = session.video
    if video is None:
        return session, gr.skip(), gr.skip()
    pred = faces.chosen_view(video)
    compounds = [c.name for c in classes_of(session).compounds]
    photo = pred.video.get("kind") == "image"
    return (
        session,
        bars_figure(pred.probabilities, compounds, show_all=session.show_all),
        gr.skip() if photo else timeline_figure(pred, compounds, show_all=session.show_all),
    )


# ---------------------------------------------------------------------------- result values


def model_warnings(model: str | None) -> list[str]:
    """What every result of `model` must say (a toy or test model's numbers mean nothing)."""
    if is_toy(model):
        return [f"{model} is a toy/test model: these numbers say nothing about real faces"]
    return []


def result_values(
    session: Session, *, encoded_now: bool = False, gallery: bool = False, image: bool = False
) -> Analysed:
    """The session's current result in every result component (all skipped without a video):
    for a photo, the chosen face's (`faces.chosen_view`). `gallery`: refill the gallery;
    `image`: redraw the photo's boxes (cleared for a video); otherwise both are left as shown."""
    video = session.video
    if video is None:
        return skipped(Analysed, session=session)
    pred = faces.chosen_view(video)
    classes = classes_of(session)
    compounds = [c.name for c in classes.compounds]
    warnings = list(pred.warnings) + model_warnings(video.model)
    top = dict(sorted(pred.probabilities.items(), key=lambda kv: -kv[1]))
    photo = pred.video.get("kind") == "image"
    thumbs = (
        [
            (img, f"face {i + 1}" if photo and pred.tracks else f"{t:.1f} s")
            for i, (t, img) in enumerate(video.encoding.thumbnails)
        ]
        if gallery
        else gr.skip()
    )
    timings = timings_markdown(
        pred.timings,
        frames_encoded=session.frames_encoded,
        rescored=session.rescored,
        encodings=session.encodings,
        detection=pred.faces.detection,
    )
    return Analysed(
        session=session,
        summary=summary_markdown(
            pred, model=video.model, encoded_now=encoded_now, face=faces.chosen_face(video)
        ),
        label=top,
        evidence=evidence_markdown(pred),
        bars=bars_figure(pred.probabilities, compounds, show_all=session.show_all),
        bars_text=md(bars_summary(pred.probabilities)),
        timeline=None
        if photo
        else mark_key_moments(
            timeline_figure(pred, compounds, show_all=session.show_all),
            pred,
            video.encoding.thumbnails,
        ),
        timeline_text="" if photo else md(timeline_summary(pred)),
        timeline_box=gr.update(visible=not photo),
        gallery=thumbs,
        files=download_files(
            pred,
            faces.download_name(video),
            warnings,
            classes,
            chosen_face=faces.chosen_number(video),
        ),
        timings=timings,
        warnings=banner(warnings),
        classes_label=top,
        rescore=timings,
        **faces.face_values(video, image=image),
    )


# ---------------------------------------------------------------------------------- text blocks


def summary_markdown(
    prediction: Prediction, *, model: str, encoded_now: bool, face: int = 0
) -> str:
    """One-paragraph result summary (escaped); a photo's names the `face` shown (0: the first)."""
    v = prediction.video
    f = prediction.faces
    top, p = prediction.top_k(1)[0]
    if v.get("kind") == "image":
        n = len(prediction.tracks)
        largest = f" · showing face {face + 1}'s result" if n > 1 else ""
        faces = (
            f"{n} face{'s' if n != 1 else ''} found{largest}"
            if n
            else "no face found (centre crop analysed)"
        )
        return (
            f"**Top emotion: {md(top)}** ({p:.1%}) · photo *{md(v.get('name', ''))}* "
            f"({v.get('width', '?')}x{v.get('height', '?')}) · model {code(model)} · {faces}"
            + ("" if encoded_now else " · *reused the cached encoding*")
        )
    if f.detection:
        faces = f"{f.frames_with_face} of {f.sampled_frames} sampled frames had a face"
    else:
        faces = f"{f.sampled_frames} frames (no face detection: the model takes whole frames)"
    if f.frames_without_face and f.detection:
        used = "centre crop used" if f.fallback == "center" else "skipped"
        faces += f"; {f.frames_without_face} without ({used})"
    size = f"{v.get('width', '?')}x{v.get('height', '?')}"
    return (
        f"**Top emotion: {md(top)}** ({p:.1%}) · clip *{md(v.get('name', ''))}* "
        f"({float(v.get('duration') or 0):.1f} s, {size}) · model {code(model)} · {faces}"
        + ("" if encoded_now else " · *reused the cached encoding*")
    )


def timings_markdown(
    timings: dict[str, float],
    *,
    frames_encoded: int,
    rescored: int,
    encodings: int,
    detection: bool = True,
) -> str:
    """Stage timings plus the session's encode/re-score counters (the UI shows both); without
    face `detection` (a model that takes whole frames) there is no detect stage to list."""
    order: tuple[str, ...] = ("decode", "detect", "encode", "temporal", "text", "score", "total")
    if not detection:
        order = tuple(k for k in order if k != "detect")
    cells = " · ".join(
        f"{k} {timings[k] * 1000:.0f} ms" if timings[k] < 1 else f"{k} {timings[k]:.2f} s"
        for k in order
        if k in timings
    )
    return (
        f"**Stage timings:** {cells}  \n"
        f"**Frames encoded: {frames_encoded}** "
        f"(in {encodings} video encoding(s) this session) · "
        f"**re-scored without re-encoding: {rescored}**"
    )


def banner(warnings: Sequence[str]) -> str:
    """The warning banner above a result: an HTML list announced by screen readers
    (``role="alert"``), one escaped line per distinct warning; empty: no warning."""
    if not warnings:
        return ""
    items = "".join(f"<li>⚠ {html.escape(w, quote=False)}</li>" for w in dict.fromkeys(warnings))
    return f'<div role="alert"><ul>{items}</ul></div>'


def warnings_markdown(warnings: Sequence[str]) -> str:
    """The banner above a result: one escaped line per distinct warning (empty: none)."""
    if not warnings:
        return ""
    return "\n".join(f"- ⚠ {md(w)}" for w in dict.fromkeys(warnings))
