"""Faces: MediaPipe detection, IoU tracking and square face crops; numpy + cv2, no torch.

All images are ``(H, W, 3)`` uint8 RGB arrays with values in [0, 255]; boxes are float pixel
coordinates ``(x, y, w, h)`` in the image they were detected in. Importing this package is cheap
(MediaPipe is imported on the first detection).

Modules:
    boxes: `FaceBox`, the thresholds of a trustworthy face, `min_track_frames`, `merge_duplicates`.
    detection: `FaceDetector` (MediaPipe BlazeFace short range), `default_detector_model`.
    blazeface: `BlazeFace` (the same model run directly by LiteRT: the photo search's detector).
    crops: `square_box`, `crop_square`, `center_crop`.
    tracking: `Track`, `FaceTracker`, and `FaceCropper` (detect + track + verify + crop).
    search: a photo's faces (`find_faces`: tile search, face-presence check, `order_faces`).
    verify: `FaceVerifier` (MediaPipe face-landmark model's face-presence score, profile
        cascade, MTCNN's ONet).
    mtcnn_check: `MTCNNCheck` (MTCNN's ONet face probability of a box, in numpy).
    tflite: `TFLiteModel` (a raw ``.tflite`` model through LiteRT or OpenCV).

The public names are re-exported here, so ``from emoclip.faces import FaceCropper`` keeps working.
"""

from __future__ import annotations

from emoclip.faces.boxes import MIN_FACE_SCORE, FaceBox, merge_duplicates, min_track_frames
from emoclip.faces.crops import center_crop, crop_square, square_box
from emoclip.faces.detection import FaceDetector, default_detector_model
from emoclip.faces.tracking import FaceCrop, FaceCropper, FaceTracker, Track

__all__ = [
    "MIN_FACE_SCORE",
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
