"""The second look at a face box: `FaceVerifier`, MediaPipe's face-landmark model's face-presence
score on a square crop around the box, and `default_verifier_model`.

The landmark model (``face_landmark.tflite``, Apache-2.0, from the ``mediapipe==0.10.21`` wheel,
shipped in ``emoclip/assets/``) is made to follow a face from frame to frame; besides 468
landmarks it outputs one logit, "is there still a face in this crop", which a framed picture, a
lamp, a clock, a cat or a drawn face does not pass. It sees a ``192x192`` RGB crop in [0, 1], the
box's square enlarged by half (`VERIFY_MARGIN`), as MediaPipe's face mesh crops it.

`FaceVerifier.profile` is a second opinion for faces in profile, which the landmark model
doubts: OpenCV's Haar profile-face cascade (``haarcascade_profileface.xml``, shipped inside the
``opencv-contrib-python`` wheel under ``cv2.data.haarcascades``, Intel's BSD-style licence) on the
same crop at 96 px and on its mirror image (the cascade knows faces turned one way).

`FaceVerifier.onet` is a third: MTCNN's ONet face probability of the box's square crop at 48 px
(`emoclip.faces.mtcnn_check`, weights from facenet-pytorch 2.6.0, MIT, shipped in
``emoclip/assets/``), trained on WIDER FACE's many poses; it vouches for faces in profile or
half turned that the landmark model doubts and the cascade misses.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emoclip.faces.boxes import FaceBox, check_image
from emoclip.faces.crops import crop_square
from emoclip.faces.mtcnn_check import MTCNNCheck
from emoclip.faces.tflite import TFLiteModel

__all__ = ["VERIFY_MARGIN", "FaceVerifier", "default_verifier_model"]

VERIFY_MARGIN = 0.5  # the crop is the box's square enlarged by this share of its side
_SIZE = 192
_FLAG = "conv2d_31"  # the face-presence logit, shape (1, 1, 1, 1)
_PROFILE = "haarcascade_profileface.xml"
_PROFILE_SIZE = 96  # the crop the cascade sees (px); faces in it are >= _PROFILE_MIN px
_PROFILE_MIN = 32


def default_verifier_model() -> Path:
    """Path of the bundled face-landmark model (MediaPipe face mesh, 1.2 MB)."""
    return Path(__file__).resolve().parents[1] / "assets" / "face_landmark.tflite"


class FaceVerifier:
    """Face-presence score of boxes in an image (see the module).

    Args:
        model_path: A face-landmark ``.tflite``; defaults to `default_verifier_model`.
        backend: Who runs it (`TFLiteModel`): ``"auto"``, ``"litert"`` or ``"opencv"``.
    """

    def __init__(self, model_path: str | Path | None = None, backend: str = "auto") -> None:
        self.model = TFLiteModel(model_path or default_verifier_model(), backend=backend)
        self._cascade: Any = None
        self._lock = threading.Lock()  # a cascade is not to be run by two threads at once
        self._onet = MTCNNCheck("onet")  # its weights load on the first call

    def presence(self, image: np.ndarray, box: FaceBox) -> float:
        """Probability in [0, 1] that `box` of `image` (``(H, W, 3)`` uint8 RGB) holds a face."""
        check_image(image)
        crop = crop_square(image, box, margin=VERIFY_MARGIN, size=_SIZE)
        out = self.model(crop[None].astype(np.float32) / 255.0)
        logit = float(np.ravel(out[_FLAG])[0])
        return float(1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0))))

    def profile(self, image: np.ndarray, box: FaceBox) -> bool:
        """Whether OpenCV's profile-face cascade finds a face in the box's crop (the square
        enlarged by `VERIFY_MARGIN`, 96 px, grey) or in its mirror image; `image` is
        ``(H, W, 3)`` uint8 RGB."""
        check_image(image)
        crop = crop_square(image, box, margin=VERIFY_MARGIN, size=_PROFILE_SIZE)
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        with self._lock:
            if self._cascade is None:
                path = cv2.data.haarcascades + _PROFILE  # type: ignore[attr-defined]
                self._cascade = cv2.CascadeClassifier(path)
                if self._cascade.empty():
                    raise FileNotFoundError(f"OpenCV's profile-face cascade not found: '{path}'")
            for g in (gray, np.ascontiguousarray(gray[:, ::-1])):
                found = self._cascade.detectMultiScale(
                    g, 1.1, 3, minSize=(_PROFILE_MIN, _PROFILE_MIN)
                )
                if len(found):
                    return True
        return False

    def onet(self, image: np.ndarray, box: FaceBox) -> float:
        """MTCNN's ONet probability in [0, 1] that `box` of `image` (``(H, W, 3)`` uint8 RGB)
        is a face, on the box's square crop at 48 px (`MTCNNCheck`)."""
        return self._onet.probability(image, box)

    def close(self) -> None:
        """Nothing to release beyond the model, which the garbage collector frees."""
