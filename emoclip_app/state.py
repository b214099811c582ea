"""What one browser session owns: stored in `gr.State`, never in module globals."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.classes import ClassSet
    from emoclip.live import LiveWindow


@dataclass
class CurrentVideo:
    """The session's analysed video or photo: its encoding (re-scored on class edits), latest
    result and, for a photo, the face chosen (`face`, kept by re-scoring; a new input starts at
    0, the library's first face) and the photo shown for redrawing its boxes."""

    path: str
    name: str
    model: str
    fallback: str
    encoding: Any  # emoclip.inference.predictor.VideoEncoding
    prediction: Any  # emoclip.Prediction under the session's current classes
    face: int = 0  # a photo's face whose result the page shows (index into prediction.tracks)
    photo: bytes | None = None  # a photo as shown (JPEG, without boxes): `tabs.faces.kept_photo`
    photo_scale: float = 1.0  # shown pixels per pixel of the photo the boxes are in


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
    undo_classes: ClassSet | None = None  # the set the last chosen preset replaced
    video: CurrentVideo | None = None
    clips: list[Clip] = field(default_factory=list)
    points: list[Any] = field(default_factory=list)  # the explorer's last projection (LatentPoint)
    coords: Any = None  # (N, 2) projected coordinates of `points`
    projection: str = ""
    collection: Any = None  # the uploaded batch results (emoclip.explore.Collection) or None
    collection_index: Any = None  # NeighbourIndex over `collection`'s embeddings
    point_rows: Any = None  # (len(points),) int: each point's `collection` row, -1 if none
    show_all: bool = False  # draw every class, not only the top ones
    frames_encoded: int = 0
    encodings: int = 0
    rescored: int = 0
    shown_default: str | None = None  # the default model the editor was last filled for


@dataclass
class LiveBuffer:
    """The live webcam's ring buffer of frame embeddings (`window`) and its prediction history.

    A new buffer starts when the model, the class names or T change.
    """

    model: str | None = None
    names: tuple[str, ...] = ()
    window: LiveWindow | None = None  # the last T frame embeddings; None until the first frame
    start: float | None = None
    times: list[float] = field(default_factory=list)  # seconds since `start`, one per prediction
    history: list[np.ndarray] = field(default_factory=list)  # (C,) probabilities per prediction
    stamps: deque = field(default_factory=lambda: deque(maxlen=30))  # recent frame end times (fps)
    busy: deque = field(default_factory=lambda: deque(maxlen=30))  # recent seconds per frame
    frames: int = 0  # frames processed since the buffer started
    plotted: float = float("-inf")  # when the live timeline was last drawn (monotonic s)
    note: str = ""  # what the page should say about the stream (e.g. it was restarted)
