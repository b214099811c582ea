"""A photo's faces in the Analyse tab: the photo with a numbered box per face, one table row per
face, a number selector, and the chosen face's view of the result.

Whose result the bars, label, evidence and downloads show is the session's choice
(`CurrentVideo.face`, picked by `face_pick`'s events); the library's answer is unchanged (its
top-level answer is the first face's, `Prediction.tracks` lists every face).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np

from ..errors import md
from ..figures import draw_faces, shown_photo

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.results import Prediction

    from ..state import CurrentVideo

TABLE_HEADERS = ["face", "emotion", "prob.", "box (x, y, w, h)"]
SHOWN = " (shown)"  # after the number of the face whose result is shown


def layout(ui: Any) -> None:
    """The photo's faces (`ui.faces_image`, `ui.faces`, `ui.face_pick`, `ui.face_table`),
    added to `ui` under the photo input."""
    ui.faces_image = gr.Image(
        label="Faces found (numbered): click a face to see its result",
        interactive=False,
        elem_id="faces-image",
        height=320,
    )
    ui.faces = gr.Markdown(elem_id="faces-list")
    ui.face_pick = gr.Radio(
        [],
        label="Face shown",
        info="Whose result the label, bars, evidence and downloads show",
        elem_id="face-pick",
        visible=False,
    )
    ui.face_table = gr.Dataframe(
        headers=TABLE_HEADERS,
        interactive=False,
        elem_id="face-table",
        label="Faces (click a row to see its result)",
        visible=False,
        wrap=True,
    )


PHOTO_QUALITY = 90  # JPEG quality of the photo a session keeps for redrawing its boxes


def kept_photo(image: np.ndarray) -> tuple[bytes, float]:
    """The photo as a session keeps it to redraw its boxes: downsized as shown (`shown_photo`) and
    JPEG-encoded (a 1280x720 photo: ~0.2 MB rather than 2.8 MB of pixels per session), and its
    scale (shown pixels per photo pixel). `image`: (H, W, 3) uint8 RGB, upright."""
    import cv2

    small, scale = shown_photo(image)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, PHOTO_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise ValueError("the photo could not be kept for redrawing")
    return data.tobytes(), scale


def photo_pixels(video: CurrentVideo) -> np.ndarray | None:
    """The kept photo as (H', W', 3) uint8 RGB (None: no photo kept)."""
    import cv2

    if video.photo is None:
        return None
    bgr = cv2.imdecode(np.frombuffer(video.photo, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def is_photo(video: CurrentVideo | None) -> bool:
    """Whether the session's current input is a photo (its picker applies)."""
    return video is not None and video.prediction.video.get("kind") == "image"


def chosen_face(video: CurrentVideo) -> int:
    """The index of the face whose result the page shows (0 unless a photo's face was chosen)."""
    n = len(video.prediction.tracks)
    return video.face if is_photo(video) and 0 <= video.face < n else 0


def chosen_number(video: CurrentVideo) -> int | None:
    """The chosen face's number (1 = the first) for a photo with faces; None otherwise."""
    return chosen_face(video) + 1 if is_photo(video) and video.prediction.tracks else None


def chosen_view(video: CurrentVideo) -> Prediction:
    """The current result as the page shows it: for a photo, the chosen face's.

    The chosen face's probabilities, evidence and embedding become the top-level answer and it is
    marked primary; every face stays listed in `tracks`, in the library's order. The first face
    (or a video) is the library's `Prediction` itself.
    """
    pred = video.prediction
    k = chosen_face(video)
    if k == 0:
        return pred
    evidence = pred.evidence
    if evidence is not None and k < len(evidence.faces):
        evidence = dataclasses.replace(evidence.faces[k], faces=evidence.faces)
    tracks = [dataclasses.replace(t, primary=i == k) for i, t in enumerate(pred.tracks)]
    embedding = pred.embedding
    if k < len(video.encoding.tracks):
        embedding = np.array(video.encoding.tracks[k][4], dtype=np.float32)
    return dataclasses.replace(
        pred,
        probabilities=dict(pred.tracks[k].probabilities),
        tracks=tracks,
        evidence=evidence,
        embedding=embedding,
    )


def download_name(video: CurrentVideo) -> str:
    """The downloads' file name: the input's, with ``-faceN`` for a chosen face of several."""
    if is_photo(video) and len(video.prediction.tracks) > 1:
        return f"{Path(video.name).stem}-face{chosen_face(video) + 1}"
    return video.name


def face_at(boxes: Sequence[tuple[float, float, float, float]], x: float, y: float) -> int | None:
    """The index of the box holding the point (x, y) (the smallest, if several do); None if
    none does. Boxes are (x, y, w, h), in the point's pixels."""
    inside = [
        (w * h, i)
        for i, (bx, by, w, h) in enumerate(boxes)
        if bx <= x <= bx + w and by <= y <= by + h
    ]
    return min(inside)[1] if inside else None


def boxes_of(prediction: Prediction) -> list[tuple[float, float, float, float]]:
    """The faces' boxes (x, y, w, h) in pixels of the upright photo, in the faces' order."""
    return [t.box if t.box is not None else (0.0, 0.0, 0.0, 0.0) for t in prediction.tracks]


def table_rows(prediction: Prediction, chosen: int) -> list[list[Any]]:
    """One row per face: its number (marked when it is the one shown), top class, the class's
    probability, and box."""
    rows = []
    for i, t in enumerate(prediction.tracks):
        x, y, w, h = t.box or (0, 0, 0, 0)
        rows.append(
            [
                f"{i + 1}{SHOWN if i == chosen else ''}",
                t.top,
                f"{t.probabilities[t.top]:.0%}",
                f"{x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}",
            ]
        )
    return rows


def faces_heading(prediction: Prediction, chosen: int) -> str:
    """The line above the table (escaped): how many faces, which is shown; or the library's own
    words when there is no face (none found, or no search ran)."""
    if not prediction.tracks:
        return md(prediction.warnings[0].capitalize()) if prediction.warnings else ""
    n = len(prediction.tracks)
    if n == 1:
        return "**1 face** (its result is shown)."
    return (
        f"**{n} faces** (verified first, then largest) · **showing face {chosen + 1}** "
        f"({md(prediction.tracks[chosen].top)}): click a face, its row, or choose its number"
    )


def face_values(video: CurrentVideo | None, *, image: bool) -> dict[str, Any]:
    """The faces' components for the current input: a photo's faces (`image`: redraw the photo,
    its chosen face marked; otherwise left as shown), or cleared and hidden for a video."""
    if video is None:
        return dict(
            faces_image=gr.skip(), faces=gr.skip(), face_pick=gr.skip(), face_table=gr.skip()
        )
    if not is_photo(video):
        return dict(
            faces_image=None if image else gr.skip(),
            faces="",
            face_pick=gr.Radio(choices=[], value=None, visible=False),
            face_table=gr.Dataframe(value=[], headers=TABLE_HEADERS, visible=False),
        )
    pred = video.prediction
    k = chosen_face(video)
    n = len(pred.tracks)
    drawn: Any = gr.skip()
    photo = photo_pixels(video) if image else None
    if photo is not None:
        s = video.photo_scale
        boxes = [(x * s, y * s, w * s, h * s) for x, y, w, h in boxes_of(pred)]
        drawn = draw_faces(photo, boxes, chosen=k if n else None)
    return dict(
        faces_image=drawn,
        faces=faces_heading(pred, k),
        face_pick=gr.Radio(
            choices=[(f"Face {i + 1}", i + 1) for i in range(n)],
            value=k + 1 if n else None,
            visible=n > 1,
        ),
        face_table=gr.Dataframe(value=table_rows(pred, k), headers=TABLE_HEADERS, visible=n > 0),
    )
