"""Choosing a photo's face: a click on its box in the photo (`gr.Image.select`), on its table row
(`gr.Dataframe.select`) or its number (`gr.Radio.input`, for the keyboard) makes it the face whose
result the label, bars, evidence and downloads show. The choice is the session's
(`CurrentVideo.face`): re-scoring after a class edit keeps it, a new input starts at face 1. A
video ignores the picker; a click outside every box keeps the choice.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..errors import no_dead_end
from ..outputs import Analysed, components, skipped
from ..state import Session
from .analyse import result_values
from .faces import boxes_of, face_at, is_photo


def wire(ui: Any) -> None:
    """The picker's events (page only: the API's answers never depend on a session's choice)."""
    options = dict(show_progress="hidden", api_visibility="private", concurrency_limit=None)
    outputs = components(ui, Analysed)
    ui.faces_image.select(no_dead_end(face_clicked, Analysed), [ui.session], outputs, **options)
    ui.face_table.select(no_dead_end(row_clicked, Analysed), [ui.session], outputs, **options)
    ui.face_pick.input(
        no_dead_end(face_numbered, Analysed), [ui.face_pick, ui.session], outputs, **options
    )


def choose(session: Session, face: int | None) -> Analysed:
    """Show face `face` (an index into the photo's faces) of the session's photo; every output is
    left as it is when there is no photo, no such face, or it is already shown."""
    video = session.video
    if not is_photo(video) or face is None:
        return skipped(Analysed)
    assert video is not None  # is_photo
    if not 0 <= face < len(video.prediction.tracks) or face == video.face:
        return skipped(Analysed)
    video.face = face
    return result_values(session, image=True)


def face_clicked(session: Session, evt: gr.SelectData) -> Analysed:
    """A click on the shown photo (`evt.index`: [x, y] in its pixels): the face under it."""
    video = session.video
    if not is_photo(video) or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
        return skipped(Analysed)
    assert video is not None  # is_photo
    x, y = (float(v) / video.photo_scale for v in evt.index)
    return choose(session, face_at(boxes_of(video.prediction), x, y))


def row_clicked(session: Session, evt: gr.SelectData) -> Analysed:
    """A click on a row of the faces table (`evt.index`: [row, column])."""
    index = evt.index
    row = index[0] if isinstance(index, list | tuple) and index else None
    return choose(session, row if isinstance(row, int) else None)


def face_numbered(number: Any, session: Session) -> Analysed:
    """A face chosen by its number (1 = the first) in the selector."""
    try:
        face = int(number) - 1
    except (TypeError, ValueError):
        return skipped(Analysed)
    return choose(session, face)
