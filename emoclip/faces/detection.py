"""Face detection with MediaPipe Tasks (BlazeFace short range): `FaceDetector`, the lazy,
thread-safe creation of the MediaPipe detector, and `default_detector_model`.

MediaPipe is imported lazily, on the first detection, so importing this module is cheap. The
detector uses MediaPipe's BlazeFace short-range model (``face_detection_short_range.tflite``,
Apache-2.0, taken from the ``mediapipe==0.10.21`` wheel) shipped in ``emoclip/assets/``.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from emoclip.faces.boxes import FaceBox, check_image, merge_duplicates
from emoclip.quiet import quiet_native_stderr

__all__ = ["FaceDetector", "default_detector_model"]


def default_detector_model() -> Path:
    """Path of the bundled MediaPipe face-detection model (BlazeFace short range, 230 KB)."""
    return Path(__file__).resolve().parents[1] / "assets" / "face_detection_short_range.tflite"


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


def _close_when_collected(detector: Any) -> None:
    """A forgotten detector's finalizer: close it on a short-lived thread.

    The garbage collector can run this while another detector is inside MediaPipe's dispatcher
    (which holds a lock while it submits a call); closing synchronously there would wait on that
    same lock forever. A thread closes it once the lock is free. At interpreter exit, when no new
    thread may start, it is closed here (see `_close_quietly`)."""
    try:
        threading.Thread(
            target=_close_quietly, args=(detector,), name="emoclip-close-detector", daemon=True
        ).start()
    except RuntimeError:
        _close_quietly(detector)


class Detector(Protocol):
    """What a `FaceCropper` needs of a detector: `FaceDetector`, or a wrapper that shares one."""

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...

    def close(self) -> None: ...


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
                self._finalizer = weakref.finalize(self, _close_when_collected, self._detector)
            return self._detector

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Detect faces in one image.

        Args:
            image: ``(H, W, 3)`` uint8 RGB array in [0, 255].

        Returns:
            Face boxes in pixels of `image`, clipped to it, with score >= `min_confidence`,
            duplicates of one face merged (`merge_duplicates`), sorted by area, largest first.
        """
        check_image(image)
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
            if self._finalizer is not None and self._finalizer.detach() is not None:
                _close_quietly(self._detector)  # an explicit close is synchronous, at most once
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
