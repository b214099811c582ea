"""Face detection (MediaPipe Tasks), IoU tracking and square face crops; numpy + cv2, no torch.

All images are ``(H, W, 3)`` uint8 RGB arrays with values in [0, 255]; boxes are float pixel
coordinates ``(x, y, w, h)`` in the image they were detected in. MediaPipe is imported lazily, on
the first detection, so importing this module is cheap.

The detector uses MediaPipe's BlazeFace short-range model (``face_detection_short_range.tflite``,
Apache-2.0, taken from the ``mediapipe==0.10.21`` wheel) shipped in ``emoclip/assets/``.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .quiet import quiet_native_stderr

__all__ = [
    "FaceBox",
    "FaceCrop",
    "FaceCropper",
    "FaceDetector",
    "FaceTracker",
    "Track",
    "center_crop",
    "crop_square",
    "default_detector_model",
    "merge_duplicates",
    "min_track_frames",
    "square_box",
]

_FALLBACKS = ("center", "skip")
INTERPOLATE_MIN_IOU = 0.6  # crop_pair: detections around a frame this alike give it their midpoints

# Faces you can trust (README, "Faces you can trust"; measured with BlazeFace short range):
# real faces (skimage astronaut at 90-200 px, blurred, dark, JPEG q15, grey, tilted; cameraman)
# score 0.75-0.95, a 66 px face in a 640x480 frame 0.55; non-faces (text titles, skin-coloured
# blobs and gradients, the chelsea cat, coffee, textures) score at most 0.50.
MIN_FACE_SCORE = 0.6  # detections scoring less are not faces (tracks keep a mean score >= this)
MIN_TRACK_FRACTION = 0.1  # a track must hold this share of the sampled frames ...
MIN_TRACK_FRAMES_CAP = 8  # ... but never needs more than this many (~1 s at 7.5 sampled fps)
NEAR_CENTRE = 0.75  # tracking: a box this close (x its side) to a track's last box continues it
DUPLICATE_IOU = 0.5  # two boxes of one frame overlapping this much are one face
DUPLICATE_CONTAINMENT = 0.8  # so are two boxes when this share of the smaller lies in the larger


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in pixels of the original image.

    Attributes:
        x: Left edge.
        y: Top edge.
        w: Width (>= 0).
        h: Height (>= 0).
        score: Detector confidence in [0, 1].
    """

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return max(self.w, 0.0) * max(self.h, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(cx, cy)`` in pixels."""
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    def iou(self, other: FaceBox) -> float:
        """Intersection over union with `other`, in [0, 1] (0 when both are empty)."""
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` without the score."""
        return self.x, self.y, self.w, self.h


def min_track_frames(sampled_frames: int, fraction: float = MIN_TRACK_FRACTION,
                     cap: int = MIN_TRACK_FRAMES_CAP) -> int:
    """Sampled frames a face track needs to count as a person in a clip of `sampled_frames`.

    ``min(cap, max(2, ceil(fraction * sampled_frames)))``, and never more than the clip has; a
    one-frame clip (a photograph) needs 1. A detection that does not persist is not a person.
    """
    if sampled_frames <= 1:
        return 1
    need = max(2, int(np.ceil(fraction * sampled_frames - 1e-9)))
    return int(min(need, max(cap, 1), sampled_frames))


def merge_duplicates(boxes: list[FaceBox], iou_threshold: float = DUPLICATE_IOU,
                     containment: float = DUPLICATE_CONTAINMENT) -> list[FaceBox]:
    """One box per face: of boxes overlapping with IoU > `iou_threshold`, or with at least
    `containment` of the smaller one's area inside the other, only the higher-scoring is kept.

    Returns:
        The kept boxes, sorted by area, largest first.
    """
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if not any(_duplicate(box, k, iou_threshold, containment) for k in kept):
            kept.append(box)
    return sorted(kept, key=lambda b: b.area, reverse=True)


def _duplicate(a: FaceBox, b: FaceBox, iou_threshold: float, containment: float) -> bool:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    smaller = min(a.area, b.area)
    return a.iou(b) > iou_threshold or (smaller > 0 and ix * iy >= containment * smaller)


def default_detector_model() -> Path:
    """Path of the bundled MediaPipe face-detection model (BlazeFace short range, 230 KB)."""
    return Path(__file__).resolve().parent / "assets" / "face_detection_short_range.tflite"


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"Expected an (H, W, 3) RGB image, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image, got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"Image is empty: shape {image.shape}")


def create_mediapipe_detector(model: Path, min_confidence: float) -> Any:
    """Build a MediaPipe Tasks FaceDetector in IMAGE mode (imports mediapipe here, lazily)."""
    try:
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Face detection needs MediaPipe: pip install 'mediapipe>=0.10.30'") from e
    if not model.is_file():
        raise FileNotFoundError(f"Face-detection model not found: '{model}'")
    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(model)),
        running_mode=vision.RunningMode.IMAGE,
        min_detection_confidence=min_confidence,
    )
    with quiet_native_stderr():  # LiteRT/XNNPACK "INFO:" lines on descriptor 2
        return vision.FaceDetector.create_from_options(options)


def _close_quietly(detector: Any) -> None:
    """Close a MediaPipe detector (from `FaceDetector.close`, or at exit if it was forgotten)."""
    try:
        with quiet_native_stderr():
            detector.close()
    except Exception:
        # At exit, concurrent.futures has already shut MediaPipe's worker pool down, so close()
        # fails; MediaPipe's own __del__ would then retry during module teardown and print
        # "Exception ignored in FaceDetector.__del__". Dropping the handle makes that __del__ a
        # no-op; the process is ending and the OS reclaims the detector.
        with contextlib.suppress(Exception):
            detector._handle = None


class FaceDetector:
    """MediaPipe BlazeFace (short range) face detector for single RGB images.

    The MediaPipe detector is created on the first `detect` call. Use it as a context manager or
    call `close` (idempotent); a detector that is never closed is closed at interpreter exit.

    Args:
        min_confidence: Minimum detection score in [0, 1].
        detect_max_side: Images whose longer side exceeds this are downscaled (``INTER_AREA``)
            before detection; boxes are scaled back to the original image.
        model_path: A ``.tflite`` face-detection model; defaults to `default_detector_model`.
    """

    def __init__(
        self,
        min_confidence: float = 0.5,
        *,
        detect_max_side: int = 640,
        model_path: str | Path | None = None,
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if detect_max_side < 32:
            raise ValueError(f"detect_max_side must be >= 32, got {detect_max_side}")
        self.min_confidence = float(min_confidence)
        self.detect_max_side = int(detect_max_side)
        self.model_path = Path(model_path) if model_path is not None else default_detector_model()
        self._detector: Any = None
        self._finalizer: weakref.finalize[[Any], FaceDetector] | None = None
        self._closed = False
        self._lock = threading.Lock()  # one MediaPipe detector even if threads race to create it

    def _ensure_detector(self) -> Any:
        with self._lock:
            if self._closed:
                raise RuntimeError("FaceDetector is closed")
            if self._detector is None:
                self._detector = create_mediapipe_detector(self.model_path, self.min_confidence)
                self._finalizer = weakref.finalize(self, _close_quietly, self._detector)
            return self._detector

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Detect faces in one image.

        Args:
            image: ``(H, W, 3)`` uint8 RGB array in [0, 255].

        Returns:
            Face boxes in pixels of `image`, clipped to it, with score >= `min_confidence`,
            duplicates of one face merged (`merge_duplicates`), sorted by area, largest first.
        """
        _check_image(image)
        import mediapipe as mp

        detector = self._ensure_detector()
        height, width = image.shape[:2]
        small, scale = _downscale(image, self.detect_max_side)
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(small))
        # LiteRT logs on descriptor 2 at its first inference and at the first input whose memory
        # is not aligned, which can be any frame: every call is wrapped (a few dup2 calls).
        with quiet_native_stderr():
            detections = detector.detect(mp_image).detections
        boxes = []
        for detection in detections:
            score = float(detection.categories[0].score) if detection.categories else 0.0
            bb = detection.bounding_box
            raw = FaceBox(
                bb.origin_x / scale, bb.origin_y / scale, bb.width / scale, bb.height / scale, score
            )
            box = _clip_box(raw, width, height)
            if box.area > 0 and score >= self.min_confidence:
                boxes.append(box)
        return merge_duplicates(boxes)

    def close(self) -> None:
        """Release the MediaPipe detector. Safe to call more than once."""
        with self._lock:
            self._closed = True
            if self._finalizer is not None:
                self._finalizer()  # calls detector.close() at most once
            self._detector = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink `image` so its longer side is <= `max_side`; returns ``(image, scale)``."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2 wants (W, H)
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # Use the exact per-axis ratio actually applied (rounding) -> average for a single scale.
    return small, (size[0] / width + size[1] / height) / 2.0


def _clip_box(box: FaceBox, width: int, height: int) -> FaceBox:
    x0 = min(max(box.x, 0.0), float(width))
    y0 = min(max(box.y, 0.0), float(height))
    x1 = min(max(box.x + box.w, 0.0), float(width))
    y1 = min(max(box.y + box.h, 0.0), float(height))
    return FaceBox(x0, y0, x1 - x0, y1 - y0, box.score)


# --------------------------------------------------------------------------------------------
# Cropping
# --------------------------------------------------------------------------------------------


def square_box(
    box: FaceBox, margin: float, image_shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """Square around the centre of `box` with side ``max(w, h) * (1 + margin)``.

    The side is capped at the image's longer side (so a face filling the frame is not drowned in
    padding) and is at least 1 pixel. The square is *not* clipped: it may extend past the image.

    Args:
        box: Face box in pixels.
        margin: Extra context as a fraction of the box's longer side (0.25 = 25 % larger).
        image_shape: Shape of the image, ``(H, W, ...)``.

    Returns:
        ``(x, y, side, side)`` integer pixels, same convention as `FaceBox.as_tuple`.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    height, width = image_shape[:2]
    side = max(box.w, box.h) * (1.0 + margin)
    side = round(min(side, max(height, width)))
    side = max(side, 1)
    cx, cy = box.center
    return round(cx - side / 2.0), round(cy - side / 2.0), side, side


def _resize_square(patch: np.ndarray, size: int) -> np.ndarray:
    side = patch.shape[0]
    if side == size:
        return np.ascontiguousarray(patch)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def crop_square(
    image: np.ndarray, box: FaceBox, *, margin: float = 0.25, size: int = 224
) -> np.ndarray:
    """Cut a square face crop around `box` and resize it.

    Parts of the square outside the image are padded with black (``cv2.BORDER_CONSTANT``, value 0)
    rather than replicated edges, which would smear the face border into streaks.
    Shrinking uses ``cv2.INTER_AREA``, enlarging ``cv2.INTER_CUBIC``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB array in [0, 255].
        box: Face box in pixels of `image`.
        margin: Extra context as a fraction of the box's longer side (see `square_box`).
        size: Output side in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB array.
    """
    height, width = _check_crop_args(image, size)
    x, y, side, _ = square_box(box, margin, image.shape)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + side, width), min(y + side, height)
    if x1 <= x0 or y1 <= y0:  # square entirely outside the image
        return np.zeros((size, size, 3), dtype=np.uint8)
    patch = cv2.copyMakeBorder(
        image[y0:y1, x0:x1],
        top=y0 - y,
        bottom=y + side - y1,
        left=x0 - x,
        right=x + side - x1,
        borderType=cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )
    return _resize_square(patch, size)


def _check_crop_args(image: np.ndarray, size: int) -> tuple[int, int]:
    """Validate a crop's image and output size: the image's (height, width)."""
    _check_image(image)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return image.shape[0], image.shape[1]


def center_crop(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Take the largest central square of `image` and resize it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB array in [0, 255].
        size: Output side in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB array.
    """
    height, width = _check_crop_args(image, size)
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    return _resize_square(image[y0 : y0 + side, x0 : x0 + side], size)


# --------------------------------------------------------------------------------------------
# Tracking
# --------------------------------------------------------------------------------------------


@dataclass
class Track:
    """One face followed over sampled frames.

    Attributes:
        id: Track id, unique within a `FaceTracker` (0, 1, 2, ... in creation order).
        frames: Frame indices where the face was matched, increasing.
        boxes: The matched box for each entry of `frames`.
        missed: Consecutive tracker updates without a match (tracker state; 0 after a match).
    """

    id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[FaceBox] = field(default_factory=list)
    missed: int = 0  # consecutive updates without a match

    @property
    def length(self) -> int:
        """Number of frames the face was matched in."""
        return len(self.frames)

    @property
    def mean_area(self) -> float:
        """Mean box area in square pixels (0.0 for an empty track)."""
        return float(np.mean([b.area for b in self.boxes])) if self.boxes else 0.0

    @property
    def mean_score(self) -> float:
        """Mean detector score of the track's boxes (0.0 for an empty track)."""
        return float(np.mean([b.score for b in self.boxes])) if self.boxes else 0.0

    def stable(self, min_frames: int, min_score: float = MIN_FACE_SCORE) -> bool:
        """Whether the track counts as a person: at least `min_frames` frames, mean score >= `min_score`."""
        return self.length >= max(min_frames, 1) and self.mean_score >= min_score

    @property
    def last_box(self) -> FaceBox | None:
        """The most recent box, or None for an empty track."""
        return self.boxes[-1] if self.boxes else None


class FaceTracker:
    """Greedy IoU tracker over per-frame face boxes.

    Each update matches new boxes to live tracks by descending IoU with the track's last box
    (pairs below `iou_threshold` match only when the boxes have similar sizes and centres less
    than `NEAR_CENTRE` of their side apart: a face moving fast between sampled frames).
    Unmatched boxes start new tracks. A track ends after
    `max_missed` consecutive updates without a match; a face seen again later gets a new id.

    Args:
        iou_threshold: Minimum IoU for a match, in (0, 1].
        max_missed: Consecutive unmatched updates after which a track ends (>= 1).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 8) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_missed < 1:
            raise ValueError(f"max_missed must be >= 1, got {max_missed}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.tracks: list[Track] = []
        self._last_frame: int | None = None

    @property
    def active_tracks(self) -> list[Track]:
        """Tracks that can still be extended."""
        return [t for t in self.tracks if t.missed < self.max_missed]

    def update(self, frame_index: int, boxes: list[FaceBox]) -> list[int]:
        """Assign the boxes of one frame to tracks.

        Args:
            frame_index: Index of the frame; must increase from call to call.
            boxes: Face boxes detected in the frame (may be empty).

        Returns:
            The track id of each box, in the order of `boxes`.
        """
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(
                f"frame_index must increase: got {frame_index} after {self._last_frame}"
            )
        self._last_frame = frame_index
        live = self.active_tracks
        matches = _greedy_match(live, boxes, self.iou_threshold)
        ids: list[int] = []
        for i, box in enumerate(boxes):
            track = matches.get(i)
            if track is None:
                track = Track(id=len(self.tracks))
                self.tracks.append(track)
            track.frames.append(frame_index)
            track.boxes.append(box)
            track.missed = 0
            ids.append(track.id)
        matched = {id(t) for t in matches.values()}
        for track in live:
            if id(track) not in matched:
                track.missed += 1
        return ids

    def stable_tracks(self, min_frames: int = 1, min_score: float = 0.0) -> list[Track]:
        """The tracks that count as people (`Track.stable`), in creation order."""
        return [t for t in self.tracks if t.stable(min_frames, min_score)]

    def primary(self, min_frames: int = 1, min_score: float = 0.0) -> Track | None:
        """The subject: the most persistent stable track (most frames, ties by mean area, then
        the older track); None when no track is stable. With `min_frames` >= 2 a one-frame blip
        is never the subject, however large."""
        stable = self.stable_tracks(min_frames, min_score)
        if not stable:
            return None
        return max(stable, key=lambda t: (t.length, t.mean_area, -t.id))


def midpoint_boxes(before: list[FaceBox], after: list[FaceBox], min_iou: float) -> list[FaceBox] | None:
    """The boxes halfway between two detections of the same faces, in `after`'s order, or None
    when they do not pair up one to one with IoU >= `min_iou` (a face came, went or jumped)."""
    if len(before) != len(after):
        return None
    remaining = list(before)
    out = []
    for box in after:
        best = max(remaining, key=box.iou, default=None)
        if best is None or box.iou(best) < min_iou:
            return None
        remaining.remove(best)
        out.append(FaceBox((box.x + best.x) / 2, (box.y + best.y) / 2, (box.w + best.w) / 2,
                           (box.h + best.h) / 2, min(box.score, best.score)))
    return out


def _near(a: FaceBox, b: FaceBox) -> bool:
    """A face that moved fast between sampled frames: similar size (areas within 2x) and centres
    less than `NEAR_CENTRE` of the mean box side apart, whatever the IoU."""
    if a.area <= 0 or b.area <= 0 or max(a.area, b.area) > 2 * min(a.area, b.area):
        return False
    (ax, ay), (bx, by) = a.center, b.center
    side = (a.w + a.h + b.w + b.h) / 4
    return float(np.hypot(ax - bx, ay - by)) < NEAR_CENTRE * side


def _greedy_match(tracks: list[Track], boxes: list[FaceBox], threshold: float) -> dict[int, Track]:
    """Map box index -> track, taking (track, box) pairs by descending IoU; a pair matches when
    its IoU is at least `threshold`, or when the boxes are `_near` (a face moving fast)."""
    pairs = []
    for ti, track in enumerate(tracks):
        last = track.last_box
        for bi, box in enumerate(boxes):
            iou = last.iou(box) if last is not None else 0.0
            if iou >= threshold or (last is not None and _near(last, box)):
                pairs.append((iou, ti, bi))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))  # deterministic on ties
    used_tracks: set[int] = set()
    result: dict[int, Track] = {}
    for _, ti, bi in pairs:
        if ti not in used_tracks and bi not in result:
            used_tracks.add(ti)
            result[bi] = tracks[ti]
    return result


# --------------------------------------------------------------------------------------------
# Detector + tracker + crops
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceCrop:
    """A face crop from `FaceCropper`.

    Attributes:
        track_id: Id of the face's track, or None for a fallback centre crop.
        box: The detected box in pixels of the frame, or None for a fallback centre crop.
        image: ``(size, size, 3)`` uint8 RGB array in [0, 255].
    """

    track_id: int | None
    box: FaceBox | None
    image: np.ndarray


class FaceCropper:
    """Detects, tracks and crops faces in a stream of frames.

    Call it once per sampled frame, in order. Use it as a context manager or call `close`.

    Args:
        size: Side of the square crops in pixels.
        margin: Context around the face, as a fraction of the box's longer side.
        fallback: What a frame without a face gives: ``"center"`` (one centre crop of the frame)
            or ``"skip"`` (no crop).
        max_faces: Keep at most this many faces per frame, largest first.
        min_confidence: Detections scoring less are not faces (also from a given `detector`);
            default `MIN_FACE_SCORE`.
        detector: A detector to use instead of a new `FaceDetector`; the caller keeps ownership
            (`close` does not close it).

    Duplicate detections of one face in a frame are merged (`merge_duplicates`) before tracking.
    """

    def __init__(
        self,
        *,
        size: int = 224,
        margin: float = 0.25,
        fallback: str = "center",
        max_faces: int = 4,
        min_confidence: float = MIN_FACE_SCORE,
        detector: FaceDetector | None = None,
    ) -> None:
        if fallback not in _FALLBACKS:
            raise ValueError(f"fallback must be one of {_FALLBACKS}, got {fallback!r}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.min_confidence = float(min_confidence)
        self.size = int(size)
        self.margin = float(margin)
        self.fallback = fallback
        self.max_faces = int(max_faces)
        self._owns_detector = detector is None
        self.detector = detector if detector is not None else FaceDetector(min_confidence)
        self.tracker = FaceTracker()
        self.frames_without_face: list[int] = []
        self._last_boxes: list[FaceBox] | None = None  # the last frame's boxes (for crop_pair)

    def __call__(self, image: np.ndarray, frame_index: int) -> list[FaceCrop]:
        """Crop the faces of one frame.

        Args:
            image: ``(H, W, 3)`` uint8 RGB array in [0, 255].
            frame_index: Index of the frame (e.g. `SampledFrame.index`); must increase.

        Returns:
            One `FaceCrop` per detected face (at most `max_faces`, largest first). With no face:
            ``[centre crop]`` for ``fallback="center"``, ``[]`` for ``"skip"``; the frame index
            is recorded in `frames_without_face` either way.
        """
        return self._crops(image, frame_index, self._detect(image))

    def _detect(self, image: np.ndarray) -> list[FaceBox]:
        """The trusted-score, de-duplicated faces of one image, at most `max_faces`, largest first."""
        boxes = [b for b in self.detector.detect(image) if b.score >= self.min_confidence]
        return merge_duplicates(boxes)[: self.max_faces]

    def crop_pair(self, first: np.ndarray, first_index: int, second: np.ndarray, second_index: int,
                  min_iou: float = INTERPOLATE_MIN_IOU) -> tuple[list[FaceCrop], list[FaceCrop], bool]:
        """Crop two consecutive sampled frames, detecting on `first` only when needed.

        Faces are detected on `second`. When the boxes of the last detected frame (before `first`)
        and those of `second` pair up one to one with IoU >= `min_iou` each (the same faces moving
        smoothly), `first`'s boxes are their midpoints and `first` is not run through the
        detector; otherwise it is. Tracks are updated in frame order either way.

        Returns:
            ``(first's crops, second's crops, interpolated)``, each list as `__call__` returns it.
        """
        boxes2 = self._detect(second)
        boxes1 = midpoint_boxes(self._last_boxes, boxes2, min_iou) if self._last_boxes is not None else None
        interpolated = boxes1 is not None
        if boxes1 is None:
            boxes1 = self._detect(first)
        crops1 = self._crops(first, first_index, boxes1)
        crops2 = self._crops(second, second_index, boxes2)
        return crops1, crops2, interpolated

    def _crops(self, image: np.ndarray, frame_index: int, boxes: list[FaceBox]) -> list[FaceCrop]:
        ids = self.tracker.update(frame_index, boxes)
        self._last_boxes = boxes
        if not boxes:
            self.frames_without_face.append(frame_index)
            if self.fallback == "center":
                return [FaceCrop(None, None, center_crop(image, self.size))]
            return []
        return [
            FaceCrop(tid, box, crop_square(image, box, margin=self.margin, size=self.size))
            for tid, box in zip(ids, boxes, strict=True)
        ]

    @property
    def tracks(self) -> list[Track]:
        """All tracks made since the last `reset`."""
        return self.tracker.tracks

    def primary_track(self, min_frames: int = 1) -> Track | None:
        """The main subject's track (see `FaceTracker.primary`), or None if no track has
        `min_frames` frames."""
        return self.tracker.primary(min_frames, self.min_confidence)

    def reset(self) -> None:
        """Forget tracks and frames without a face (e.g. before the next video)."""
        self.tracker = FaceTracker(self.tracker.iou_threshold, self.tracker.max_missed)
        self.frames_without_face = []
        self._last_boxes = None

    def close(self) -> None:
        """Release the detector if this cropper created it. Safe to call more than once."""
        if self._owns_detector:
            self.detector.close()

    def __enter__(self) -> FaceCropper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
