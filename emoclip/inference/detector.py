"""The face detectors (and face-presence verifier) a predictor shares between its requests: made
on first use, one frame at a time.

MediaPipe's detector is not safe to call from two threads at once and costs a model load to make,
so each `EmotionPredictor` owns one `SharedDetector`: it creates the `faces.FaceDetector` lazily
(once, even when threads race to use it first), serialises calls to it, and hands the pipeline's
decode threads a `LockedDetector` view that goes through the same lock. A photo's tile search
uses `SharedDetector.searcher` instead: the same model run directly by LiteRT
(`emoclip.faces.blazeface.BlazeFace`), ~5x cheaper a call than MediaPipe's ``detect``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from emoclip.faces import FaceBox, FaceDetector
    from emoclip.faces.blazeface import BlazeFace
    from emoclip.faces.verify import FaceVerifier

__all__ = ["LockedDetector", "SharedDetector"]


class LockedDetector:
    """One MediaPipe detector shared by concurrent requests, one frame at a time, and the
    checks of its boxes (`emoclip.faces.verify.FaceVerifier`: presence, profile, ONet), which
    `emoclip.faces.search.verify_box` asks in turn."""

    def __init__(self, detector: Any, lock: threading.Lock, verifier: Any = None) -> None:
        self._detector, self._lock, self._verifier = detector, lock, verifier

    def presence(self, image: np.ndarray, box: FaceBox) -> float:
        """Face-presence probability of `box` in the (H, W, 3) uint8 RGB `image` (1.0 when the
        predictor has no verifier)."""
        if self._verifier is None:
            return 1.0
        result: float = self._verifier.presence(image, box)
        return result

    def profile(self, image: np.ndarray, box: FaceBox) -> bool:
        """Whether the profile-face cascade finds a face in `box` of the (H, W, 3) uint8 RGB
        `image` (False when the predictor has no verifier)."""
        return self._verifier is not None and bool(self._verifier.profile(image, box))

    def onet(self, image: np.ndarray, box: FaceBox) -> float:
        """MTCNN's ONet face probability of `box` in the (H, W, 3) uint8 RGB `image` (0.0 when
        the predictor has no verifier)."""
        return 0.0 if self._verifier is None else float(self._verifier.onet(image, box))

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces of one (H, W, 3) uint8 RGB frame, waiting for other requests' calls to finish."""
        with self._lock:
            result: list[FaceBox] = self._detector.detect(image)
            return result

    def close(self) -> None:
        """Nothing to release: the predictor owns the detector."""


class SharedDetector:
    """A `faces.FaceDetector` created on first use and called under one lock (see the module)."""

    def __init__(self) -> None:
        self._detector: FaceDetector | None = None
        self._verifier: FaceVerifier | None = None
        self._searcher: BlazeFace | None = None
        self._create_lock = threading.Lock()
        self._call_lock = threading.Lock()

    def get(self) -> FaceDetector:
        """The detector itself, created on the first call (calls to it are not serialised)."""
        from emoclip.faces import MIN_FACE_SCORE, FaceDetector

        with self._create_lock:
            if self._detector is None:
                self._detector = FaceDetector(MIN_FACE_SCORE)
            return self._detector

    def verifier(self) -> FaceVerifier:
        """The face-presence verifier, created on the first call."""
        from emoclip.faces.verify import FaceVerifier

        with self._create_lock:
            if self._verifier is None:
                self._verifier = FaceVerifier()
            return self._verifier

    def searcher(self) -> BlazeFace:
        """The photo search's detector (BlazeFace run directly by LiteRT, one call per tile;
        thread-safe), created on the first call."""
        from emoclip.faces.blazeface import BlazeFace
        from emoclip.faces.search import DETECT_SCORE

        with self._create_lock:
            if self._searcher is None:
                self._searcher = BlazeFace(DETECT_SCORE)
            return self._searcher

    def locked(self) -> LockedDetector:
        """A view of the detector whose calls wait for each other (for decode threads)."""
        return LockedDetector(self.get(), self._call_lock, self.verifier())

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces of one (H, W, 3) uint8 RGB frame, best first, under the shared lock."""
        return self.locked().detect(image)

    def close(self) -> None:
        """Release the detectors (a later call makes new ones)."""
        with self._create_lock:
            detector, self._detector = self._detector, None
            self._searcher = None  # LiteRT's interpreter is freed with it
        if detector is not None:
            detector.close()
