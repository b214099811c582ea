"""A still image as a one-frame clip: every face found, checked, cropped, encoded and pooled
with T = 1.

The faces come from `emoclip.faces.search.find_faces`: a multi-scale tile search with BlazeFace,
each candidate checked by the face-presence model, one box per face, best first (verified
confidence, then size). Without a face the whole image (its centre square) is analysed and the
result says so (``scope`` "whole image", a warning); a model that takes whole images (no face
detection) says that instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from emoclip.inference.encoding import NoFaceError, VideoEncoding
from emoclip.inference.parts import AnalysisParts, FrameEncoder
from emoclip.media.inputs import MediaInput

if TYPE_CHECKING:
    from emoclip.faces import FaceBox

PHOTO_MAX_FACES = 32  # faces reported per photo, best first
NO_FACE_WARNING = (
    "no face was found in the image: the whole image (its centre square) was analysed instead, "
    "so the result does not describe a person"
)
WHOLE_IMAGE_WARNING = (
    "this model analyses whole images: no face search ran, the result is for the whole image "
    "(its centre square)"
)


def _encode_faces(encoder: FrameEncoder, crops: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 face crops -> (N, D) float32 embeddings.

    A photo's few crops are split over the encode workers, each on one thread (data parallel, no
    barrier between cores): with two intra-op threads a batch of 5 took 2-4 s on a busy 2-core
    machine against 0.3-0.5 s this way (`benchmarks/README.md`, P9). One crop: one thread.
    """
    from emoclip.inference.parallel import data_parallel
    from emoclip.model.preprocess import to_tensor

    parts = min(encoder.workers, len(crops))
    if parts <= 1:
        return encoder.encode(crops, workers=1)
    x = to_tensor(crops, encoder.config).to(encoder.model.logit_scale.device)
    if x.device.type != "cpu":
        return encoder.encode(crops)
    with torch.inference_mode():
        return data_parallel(encoder.tower(), x, parts).float().cpu()


def encode_photo(parts: AnalysisParts, media: MediaInput, key: str) -> VideoEncoding:
    """Encode a photo as a one-frame clip per face.

    Each face crop is encoded and pooled alone (T = 1: the temporal model for EmoCLIP, the
    normalised frame embedding for mean pooling). Tracks are the faces, best first (track 0, the
    primary, gives the clip embedding); boxes are in pixels of the upright image. Without a
    face the centre crop is analysed (fallback "center") or `NoFaceError` raised ("skip").

    Args:
        parts: The encoder, pooler, detector and settings to run with.
        media: A resolved photo (``media.kind == "photo"``: its decoded `StillImage` in ``data``).
        key: The cache key of the encoding.

    Returns:
        A `VideoEncoding` with one sampled frame at t = 0, no timeline windows, ``(N, D)`` frame
        embeddings (one per face) and ``video["kind"] == "image"``.
    """
    from emoclip.faces import center_crop, crop_square

    cfg, st = parts.config, parts.settings
    size = cfg.image_size
    image = media.data.image
    meta = media.metadata() | {"precision": parts.encoder.precision}
    timings = {
        "decode": media.decode_seconds,
        "detect": 0.0,
        "encode": 0.0,
        "temporal": 0.0,
    }
    t0 = time.perf_counter()
    boxes: list[FaceBox] = []
    if cfg.face_detection:
        from emoclip.faces.search import find_faces

        faces = parts.faces
        found = find_faces(faces.searcher(), faces.verifier(), image)
        boxes = found[: max(st.max_faces, PHOTO_MAX_FACES)]
    if boxes:
        crops = [crop_square(image, b, margin=cfg.face_margin, size=size) for b in boxes]
    elif cfg.face_detection and st.face_fallback == "skip":
        raise NoFaceError(
            "no face was found in the image (face fallback is 'skip'); "
            "choose the centre-crop fallback to analyse the whole image"
        )
    else:
        crops = [center_crop(image, size)]
    t1 = time.perf_counter()
    timings["detect"] = t1 - t0
    frame_emb = _encode_faces(parts.encoder, np.stack(crops))  # (N, D)
    t2 = time.perf_counter()
    timings["encode"] = t2 - t1
    pooled = parts.pooler.pool(frame_emb[:, None, :])  # (N, D): each face a clip of T = 1
    timings["temporal"] = time.perf_counter() - t2
    warnings = [NO_FACE_WARNING if cfg.face_detection else WHOLE_IMAGE_WARNING] if not boxes else []
    tracks = [(i, 1, 0.0, 0.0, pooled[i], i == 0) for i in range(len(boxes))]
    import cv2

    thumbs = [(0.0, cv2.resize(c, (96, 96), interpolation=cv2.INTER_AREA)) for c in crops[:12]]
    return VideoEncoding(
        key=key,
        times=np.zeros(1),
        has_face=np.array([bool(boxes) or not cfg.face_detection]),
        frame_embeddings=frame_emb,
        frame_times=np.zeros(len(crops)),
        clip_embedding=pooled[0],
        window_starts=np.zeros(0),
        window_ends=np.zeros(0),
        window_embeddings=torch.zeros(0, pooled.shape[1]),
        tracks=tracks,
        thumbnails=thumbs,
        video=meta | {"kind": "image", "duration": 0.0, "fps": 0.0, "faces_interpolated": 0},
        timings=timings,
        fallback=st.face_fallback,
        detection=cfg.face_detection,
        warnings=warnings,
        boxes={i: b.as_tuple() for i, b in enumerate(boxes)},
    )
