"""The second look at a face box: `FaceVerifier`, MediaPipe's face-landmark model's face-presence
score on a square crop around the box, and `default_verifier_model`.

The landmark model (``face_landmark.tflite``, Apache-2.0, from the ``mediapipe==0.10.21`` wheel,
shipped in ``emoclip/assets/``) is made to follow a face from frame to frame; besides 468
landmarks it outputs one logit, "is there still a face in this crop", which a framed picture, a
lamp, a clock, a cat or a drawn face does not pass. It sees a ``192x192`` RGB crop in [0, 1], the
box's square enlarged by half (`VERIFY_MARGIN`), as MediaPipe's face mesh crops it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emoclip.faces.boxes import FaceBox, check_image
from emoclip.faces.crops import crop_square
from emoclip.faces.tflite import TFLiteModel

__all__ = ["VERIFY_MARGIN", "FaceVerifier", "default_verifier_model"]

VERIFY_MARGIN = 0.5  # the crop is the box's square enlarged by this share of its side
_SIZE = 192
_FLAG = "conv2d_31"  # the face-presence logit, shape (1, 1, 1, 1)


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

    def presence(self, image: np.ndarray, box: FaceBox) -> float:
        """Probability in [0, 1] that `box` of `image` (``(H, W, 3)`` uint8 RGB) holds a face."""
        check_image(image)
        crop = crop_square(image, box, margin=VERIFY_MARGIN, size=_SIZE)
        out = self.model(crop[None].astype(np.float32) / 255.0)
        logit = float(np.ravel(out[_FLAG])[0])
        return float(1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0))))

    def close(self) -> None:
        """Nothing to release beyond the model, which the garbage collector frees."""
