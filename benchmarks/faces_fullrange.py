"""A candidate measured and not kept (benchmarks/README.md, "Faces in the wild"): MediaPipe's
full-range BlazeFace run directly (`FullRangeDetector`), the raw model through LiteRT, its SSD
anchors and box decoding written out as MediaPipe's graph configures them.

The model is not shipped: ``pip download mediapipe==0.10.21 --no-deps`` and unzip
``mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite`` (Apache-2.0), then
point ``EMOCLIP_FULL_RANGE_MODEL`` at it. It sees a ``192x192`` RGB image in [-1, 1] and scores 2304 anchors, one per
cell of a 48x48 grid (stride 4); each regresses ``(dx, dy, w, h)`` in input pixels and six
keypoints. The image is letterboxed (padded to a square) so faces keep their shape.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from emoclip.faces.boxes import FaceBox, check_image
from emoclip.faces.tflite import TFLiteModel

__all__ = ["FullRangeDetector", "default_full_range_model", "nms"]

_SIZE = 192
_GRID = 48
_SCORE_CLIP = 100.0


def default_full_range_model() -> Path:
    """Path of the full-range BlazeFace model (677 KB), from ``EMOCLIP_FULL_RANGE_MODEL``."""
    import os

    return Path(
        os.environ.get("EMOCLIP_FULL_RANGE_MODEL", "face_detection_full_range_sparse.tflite")
    )


@lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    """``(2304, 2)`` anchor centres in [0, 1], row by row (MediaPipe: offset 0.5, stride 4)."""
    ys, xs = np.mgrid[0:_GRID, 0:_GRID].astype(np.float32)
    return np.stack([(xs.ravel() + 0.5) / _GRID, (ys.ravel() + 0.5) / _GRID], axis=1)


def nms(boxes: list[FaceBox], iou_threshold: float = 0.3) -> list[FaceBox]:
    """Non-maximum suppression by OpenCV (`cv2.dnn.NMSBoxes`): the best-scoring box of each
    overlapping group (IoU > `iou_threshold`), best first."""
    if not boxes:
        return []
    rects = [[b.x, b.y, b.w, b.h] for b in boxes]
    keep = cv2.dnn.NMSBoxes(rects, [b.score for b in boxes], 0.0, iou_threshold)
    return sorted((boxes[int(i)] for i in np.ravel(keep)), key=lambda b: -b.score)


class FullRangeDetector:
    """Full-range BlazeFace for single RGB images (faces from about 1/20 of the image up).

    Args:
        min_confidence: Minimum score in [0, 1] (the sigmoid of the anchor's logit).
        model_path: Defaults to `default_full_range_model`.
    """

    def __init__(self, min_confidence: float = 0.5, model_path: str | Path | None = None) -> None:
        self.min_confidence = float(min_confidence)
        self.model = TFLiteModel(model_path or default_full_range_model())

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Face boxes of one ``(H, W, 3)`` uint8 RGB image in its pixels, best first."""
        check_image(image)
        height, width = image.shape[:2]
        side = max(height, width)
        scale = _SIZE / side
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        square = np.zeros((_SIZE, _SIZE, 3), np.float32)
        square[:h, :w] = cv2.resize(image, (w, h), interpolation=interp)
        out = self.model((square / 127.5 - 1.0)[None])
        regs = next(v for v in out.values() if v.shape[-1] == 16)[0]  # (2304, 16)
        logits = next(v for v in out.values() if v.shape[-1] == 1)[0, :, 0]  # (2304,)
        scores = 1.0 / (
            1.0 + np.exp(-np.clip(logits.astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP))
        )
        keep = np.nonzero(scores >= self.min_confidence)[0]
        anchors = _anchors()
        boxes = []
        for i in keep:
            cx = (anchors[i, 0] + regs[i, 0] / _SIZE) * _SIZE / scale
            cy = (anchors[i, 1] + regs[i, 1] / _SIZE) * _SIZE / scale
            bw, bh = regs[i, 2] / scale, regs[i, 3] / scale
            x0, y0 = max(0.0, cx - bw / 2), max(0.0, cy - bh / 2)
            x1, y1 = min(float(width), cx + bw / 2), min(float(height), cy + bh / 2)
            if x1 > x0 and y1 > y0:
                boxes.append(
                    FaceBox(float(x0), float(y0), float(x1 - x0), float(y1 - y0), float(scores[i]))
                )
        return nms(boxes)

    def close(self) -> None:
        """Nothing to release (see `TFLiteModel`)."""
