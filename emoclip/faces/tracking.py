"""Face tracking over sampled frames: `Track`, the greedy IoU `FaceTracker`, and `FaceCropper`,
the front that detects, merges duplicates, tracks, verifies and crops the faces of each frame
(`FaceCrop`).

A track is a person only once the photos' check (`emoclip.faces.search.verify_box`: face
presence, the mirrored crop, the profile cascade, MTCNN's ONet) has passed one of its boxes: it
is checked on its first frame and again on frames 2, 4, 8, 16, ... of the track until one passes,
so an object the detector keeps finding never becomes a person, and a face that later turns away
or looks down keeps the track it was verified on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emoclip.faces.boxes import MIN_FACE_SCORE, NEAR_CENTRE, FaceBox, merge_duplicates
from emoclip.faces.crops import center_crop, crop_square
from emoclip.faces.detection import Detector, FaceDetector
from emoclip.faces.search import Verifier, verify_box

__all__ = ["INTERPOLATE_MIN_IOU", "FaceCrop", "FaceCropper", "FaceTracker", "Track"]

_FALLBACKS = ("center", "skip")
INTERPOLATE_MIN_IOU = 0.6  # crop_pair: detections around a frame this alike give it their midpoints


@dataclass
class Track:
    """One face followed over sampled frames.

    Attributes:
        id: Track id, unique within a `FaceTracker` (0, 1, 2, ... in creation order).
        frames: Frame indices where the face was matched, increasing.
        boxes: The matched box for each entry of `frames`.
        missed: Consecutive tracker updates without a match (tracker state; 0 after a match).
        verified: Whether the face-presence check passed one of its boxes; None when no check
            ran (no verifier), which does not stop the track being a person.
    """

    id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[FaceBox] = field(default_factory=list)
    missed: int = 0  # consecutive updates without a match
    verified: bool | None = None

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
        """Whether the track counts as a person: at least `min_frames` frames, mean score >=
        `min_score`, and not failed by the face-presence check (`verified` is not False)."""
        return (
            self.length >= max(min_frames, 1)
            and self.mean_score >= min_score
            and self.verified is not False
        )

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


def midpoint_boxes(
    before: list[FaceBox], after: list[FaceBox], min_iou: float
) -> list[FaceBox] | None:
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
        out.append(
            FaceBox(
                (box.x + best.x) / 2,
                (box.y + best.y) / 2,
                (box.w + best.w) / 2,
                (box.h + best.h) / 2,
                min(box.score, best.score),
            )
        )
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
        verifier: The face-presence check of new tracks (see the module); default: the
            `detector` itself when it has ``presence`` (a predictor's shared detector), else a new
            `FaceVerifier` when the cropper makes its own detector, else none.

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
        detector: Detector | None = None,
        verifier: Verifier | None = None,
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
        self.verifier = verifier if verifier is not None else _default_verifier(detector)
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

    def crop_pair(
        self,
        first: np.ndarray,
        first_index: int,
        second: np.ndarray,
        second_index: int,
        min_iou: float = INTERPOLATE_MIN_IOU,
    ) -> tuple[list[FaceCrop], list[FaceCrop], bool]:
        """Crop two consecutive sampled frames, detecting on `first` only when needed.

        Faces are detected on `second`. When the boxes of the last detected frame (before `first`)
        and those of `second` pair up one to one with IoU >= `min_iou` each (the same faces moving
        smoothly), `first`'s boxes are their midpoints and `first` is not run through the
        detector; otherwise it is. Tracks are updated in frame order either way.

        Returns:
            ``(first's crops, second's crops, interpolated)``, each list as `__call__` returns it.
        """
        boxes2 = self._detect(second)
        boxes1 = (
            midpoint_boxes(self._last_boxes, boxes2, min_iou)
            if self._last_boxes is not None
            else None
        )
        interpolated = boxes1 is not None
        if boxes1 is None:
            boxes1 = self._detect(first)
        crops1 = self._crops(first, first_index, boxes1)
        crops2 = self._crops(second, second_index, boxes2)
        return crops1, crops2, interpolated

    def _crops(self, image: np.ndarray, frame_index: int, boxes: list[FaceBox]) -> list[FaceCrop]:
        ids = self.tracker.update(frame_index, boxes)
        for tid, box in zip(ids, boxes, strict=True):
            self._verify(image, self.tracker.tracks[tid], box)
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

    def _verify(self, image: np.ndarray, track: Track, box: FaceBox) -> None:
        """Check an unverified track's newest box on its 1st, 2nd, 4th, 8th, ... frame, with the
        photos' check (`verify_box`: presence, mirrored crop, profile cascade, MTCNN's ONet)."""
        if self.verifier is None or track.verified or track.length & (track.length - 1):
            return
        track.verified = verify_box(self.verifier, image, box) is not None

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


def _default_verifier(detector: Detector | None) -> Verifier | None:
    """The detector's own check when it has one; a new `FaceVerifier` for a cropper's own
    detector; else none."""
    if detector is None:
        from emoclip.faces.verify import FaceVerifier

        return FaceVerifier()
    return detector if hasattr(detector, "presence") else None  # type: ignore[return-value]
