"""Face boxes and the rules of a trustworthy face: `FaceBox`, the score / persistence thresholds,
`min_track_frames`, `merge_duplicates` and the RGB-image check the detector and crops share.

All images are ``(H, W, 3)`` uint8 RGB arrays with values in [0, 255]; boxes are float pixel
coordinates ``(x, y, w, h)`` in the image they were detected in. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DUPLICATE_CONTAINMENT",
    "DUPLICATE_IOU",
    "MIN_FACE_SCORE",
    "MIN_TRACK_FRACTION",
    "MIN_TRACK_FRAMES_CAP",
    "NEAR_CENTRE",
    "FaceBox",
    "check_image",
    "merge_duplicates",
    "min_track_frames",
]

# Faces you can trust (README, "Faces in the wild"): the detector score a video frame's box needs
# is the photo search's candidate score as it was chosen on the calibration part of the face
# evaluation set with MediaPipe's detector (the photo search now asks 0.6 of BlazeFace run by
# LiteRT, emoclip.faces.search.SEARCH_SCORE: 0.4-0.65 gave it the same recall); a track is then
# a person only once the face-presence check has passed it (emoclip.faces.tracking).
MIN_FACE_SCORE = 0.5  # detections scoring less are not faces (tracks keep a mean score >= this)
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


def min_track_frames(
    sampled_frames: int, fraction: float = MIN_TRACK_FRACTION, cap: int = MIN_TRACK_FRAMES_CAP
) -> int:
    """Sampled frames a face track needs to count as a person in a clip of `sampled_frames`.

    ``min(cap, max(2, ceil(fraction * sampled_frames)))``, and never more than the clip has; a
    one-frame clip (a photograph) needs 1. A detection that does not persist is not a person.
    """
    if sampled_frames <= 1:
        return 1
    need = max(2, int(np.ceil(fraction * sampled_frames - 1e-9)))
    return int(min(need, max(cap, 1), sampled_frames))


def merge_duplicates(
    boxes: list[FaceBox],
    iou_threshold: float = DUPLICATE_IOU,
    containment: float = DUPLICATE_CONTAINMENT,
) -> list[FaceBox]:
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


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless `image` is a non-empty ``(H, W, 3)`` uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"Expected an (H, W, 3) RGB image, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image, got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"Image is empty: shape {image.shape}")
