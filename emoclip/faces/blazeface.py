"""BlazeFace (short range) run directly by LiteRT: `BlazeFace`, a detector with MediaPipe's
decoding written out for the tiles of a photo.

MediaPipe's ``detect`` costs a graph round trip per image (~10 ms a call on a busy 2-core machine
vs ~1.4 ms for the model itself, benchmarks/README.md "Faces in the wild"), which is what kept
the photo search from fine tiles. The model (``face_detection_short_range.tflite``, the same
file `emoclip.faces.detection` gives MediaPipe) sees ``(1, 128, 128, 3)`` RGB in [-1, 1] and
outputs 896 anchors' logits ``(1, 896, 1)`` and regressions ``(1, 896, 16)``: the box
centre offset and size, then six keypoints (right eye, left eye, nose tip, mouth, right ear
tragion, left ear tragion; "right" is the person's), all in input pixels relative to the anchor.

MediaPipe's graph for this model (``face_detection_short_range.pbtxt``): SSD anchors over 4
layers of strides 8, 16, 16, 16 with fixed size 1 and offset 0.5, i.e. 2 anchors per cell of the
16x16 grid and 6 per cell of the 8x8 grid (512 + 384 = 896); scores are the sigmoid of the logit
clipped to +-100; boxes are merged by weighted non-maximum suppression (IoU 0.3: a group's box is
the score-weighted mean of its members, its score the best one's). The image is letterboxed into
the square input (kept aspect ratio, zero borders, centred) and boxes are mapped back.
`tests/test_blazeface.py` checks this decoding against MediaPipe's own ``detect``.

Images are ``(H, W, 3)`` uint8 RGB; boxes are `FaceBox` in pixels of the image they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from emoclip.faces.boxes import FaceBox, check_image
from emoclip.faces.tflite import TFLiteModel

__all__ = ["INPUT_SIZE", "BlazeFace", "Detection", "anchors", "decode"]

INPUT_SIZE = 128  # the model's square input side
_STRIDES = ((8, 2), (16, 6))  # (stride, anchors per cell) of MediaPipe's 4 layers, merged
_SCORE_CLIP = 100.0
_NMS_IOU = 0.3


@dataclass(frozen=True)
class Detection:
    """One face found in one model input.

    Attributes:
        box: The face box in pixels of the image (`FaceBox`, score in [0, 1]).
        keypoints: ``(6, 2)`` float32 ``(x, y)`` pixels of the image: right eye, left eye, nose
            tip, mouth centre, right ear tragion, left ear tragion.
    """

    box: FaceBox
    keypoints: np.ndarray


@lru_cache(maxsize=1)
def anchors() -> np.ndarray:
    """``(896, 2)`` float32 anchor centres ``(x, y)`` in [0, 1], in the model's output order
    (row by row, the anchors of one cell together, the stride-8 grid first)."""
    out = []
    for stride, per_cell in _STRIDES:
        cells = INPUT_SIZE // stride
        ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
        centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def decode(
    logits: np.ndarray, regressors: np.ndarray, min_score: float
) -> list[tuple[float, np.ndarray]]:
    """One input's detections before suppression, in input units ([0, 1] of the square input).

    Args:
        logits: ``(896,)`` or ``(896, 1)`` float, the anchors' score logits.
        regressors: ``(896, 16)`` float, the anchors' box and keypoint regressions in pixels.
        min_score: Lowest sigmoid score kept.

    Returns:
        ``(score, coords)`` per kept anchor, best first; `coords` is ``(16,)`` float64: box
        ``x0, y0, x1, y1`` then the six keypoints' ``x, y``.
    """
    clipped = np.clip(np.ravel(logits).astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-clipped))
    keep = np.nonzero(scores >= min_score)[0]
    if keep.size == 0:
        return []
    a = anchors()[keep].astype(np.float64)  # (K, 2)
    r = regressors[keep].astype(np.float64) / INPUT_SIZE  # (K, 16)
    cx, cy = a[:, 0] + r[:, 0], a[:, 1] + r[:, 1]
    half_w, half_h = r[:, 2] / 2.0, r[:, 3] / 2.0
    coords = np.empty((keep.size, 16))
    coords[:, 0], coords[:, 1] = cx - half_w, cy - half_h
    coords[:, 2], coords[:, 3] = cx + half_w, cy + half_h
    coords[:, 4::2] = a[:, :1] + r[:, 4::2]
    coords[:, 5::2] = a[:, 1:] + r[:, 5::2]
    order = np.argsort(-scores[keep], kind="stable")
    return [(float(scores[keep][i]), coords[i]) for i in order]


def weighted_nms(
    found: list[tuple[float, np.ndarray]], iou_threshold: float = _NMS_IOU
) -> list[tuple[float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression of `decode`'s output (best first): each
    group of boxes overlapping the best remaining one by IoU > `iou_threshold` becomes one,
    its coordinates the score-weighted mean of the group's, its score the best one's."""
    if not found:
        return []
    scores = np.array([s for s, _ in found])
    coords = np.stack([c for _, c in found])
    x0, y0, x1, y1 = coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]
    areas = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    left = np.ones(len(found), bool)
    out = []
    for i in range(len(found)):  # already best first
        if not left[i]:
            continue
        ix = np.maximum(0, np.minimum(x1[i], x1) - np.maximum(x0[i], x0))
        iy = np.maximum(0, np.minimum(y1[i], y1) - np.maximum(y0[i], y0))
        inter = ix * iy
        union = areas[i] + areas - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        group = left & (iou > iou_threshold)
        group[i] = True
        w = scores[group]
        out.append((float(scores[i]), (coords[group] * w[:, None]).sum(0) / w.sum()))
        left &= ~group
    return out


def _letterbox(image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """``(128, 128, 3)`` float32 in [-1, 1] and the mapping back: ``(input, side, pad_x, pad_y)``
    where an input coordinate u in [0, 1] is pixel ``u * side - pad``."""
    height, width = image.shape[:2]
    side = float(max(height, width))
    scale = INPUT_SIZE / side
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    ox, oy = (INPUT_SIZE - w) // 2, (INPUT_SIZE - h) // 2
    square = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    square[oy : oy + h, ox : ox + w] = cv2.resize(image, (w, h), interpolation=interp)
    x = square.astype(np.float32) / 127.5 - 1.0
    return x, side, ox / scale, oy / scale


class BlazeFace:
    """BlazeFace short range through LiteRT for one image or many (see the module).

    Args:
        min_confidence: Minimum score in [0, 1].
        model_path: The short-range ``.tflite``; defaults to the bundled one
            (`emoclip.faces.detection.default_detector_model`).
        threads: LiteRT's CPU threads for one call.
    """

    def __init__(
        self, min_confidence: float = 0.5, model_path: str | Path | None = None, threads: int = 1
    ) -> None:
        from emoclip.faces.detection import default_detector_model

        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.min_confidence = float(min_confidence)
        self.input_size = INPUT_SIZE  # the photo search cuts its tiles at this size
        self.model = TFLiteModel(model_path or default_detector_model(), threads=threads)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Face boxes of one ``(H, W, 3)`` uint8 RGB image in its pixels, best first."""
        return [d.box for d in self.detect_many([image])[0]]

    def detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """The detections of each of `images` (``(H, W, 3)`` uint8 RGB, any sizes), best first,
        boxes clipped to their image. One model call per image: the model's output reshapes
        are fixed to one input, and a batch measured no faster per input."""
        out: list[list[Detection]] = []
        for image in images:
            check_image(image)
            x, side, pad_x, pad_y = _letterbox(image)
            result = self.model(x[None])
            logits, regs = result["classificators"][0], result["regressors"][0]  # (896,1), (896,16)
            found = weighted_nms(decode(logits, regs, self.min_confidence))
            dets = [_detection(s, c, side, pad_x, pad_y, image.shape) for s, c in found]
            out.append([d for d in dets if d.box.area > 0])
        return out

    def close(self) -> None:
        """Nothing to release (see `TFLiteModel`)."""


def _detection(
    score: float, coords: np.ndarray, side: float, pad_x: float, pad_y: float, shape: tuple
) -> Detection:
    height, width = shape[:2]
    px = coords * side
    px[0::2] -= pad_x
    px[1::2] -= pad_y
    x0, y0 = min(max(px[0], 0.0), width), min(max(px[1], 0.0), height)
    x1, y1 = min(max(px[2], 0.0), width), min(max(px[3], 0.0), height)
    box = FaceBox(float(x0), float(y0), float(x1 - x0), float(y1 - y0), score)
    return Detection(box, px[4:].reshape(6, 2).astype(np.float32))
