"""A still image as a one-frame clip: every face detected, cropped, encoded and pooled with T = 1.

BlazeFace (short range) sees its input at 128x128 and finds faces down to about an eighth of the
image's longer side: enough for a video frame of one subject, not for a group photo. Photos are
therefore searched at several scales (`detect_all`): the whole image, then square tiles of half,
a quarter, ... of its longer side overlapping by half, down to `MIN_TILE` pixels. A face at most
half a tile wide lies wholly inside some tile, so detections that touch a tile's inner edge are
dropped (the face is whole in a neighbour or at a coarser scale) and overlapping ones merged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emoclip.inference.encoding import NoFaceError, VideoEncoding
from emoclip.inference.parts import AnalysisParts, FrameEncoder
from emoclip.media.inputs import MediaInput

if TYPE_CHECKING:
    from emoclip.faces import FaceBox

MIN_TILE = 300  # the smallest tile side: faces down to ~40 px wide are found
PHOTO_MAX_FACES = 32  # faces reported per photo, largest first
_EDGE = 2.0  # pixels: a detection this close to a tile's inner edge is cut by it
_SAME_FACE = 0.5  # intersection over the smaller box above which two detections are one face


def tiles(width: int, height: int, min_tile: int = MIN_TILE) -> list[tuple[int, int, int]]:
    """Square tiles ``(x, y, side)`` of the multi-scale search, coarsest first (the whole image
    is not among them). Sides halve from half the longer side down to `min_tile`; tiles overlap
    by half a side and cover the image (the last row/column is aligned to the edge)."""
    out: list[tuple[int, int, int]] = []
    side = max(width, height) // 2
    while side >= min_tile:
        xs = _starts(width, side)
        ys = _starts(height, side)
        out += [(x, y, side) for y in ys for x in xs]
        side //= 2
    return out


def _starts(length: int, side: int) -> list[int]:
    if length <= side:
        return [0]
    stride = side // 2
    starts = list(range(0, length - side + 1, stride))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def detect_all(detector: Any, image: np.ndarray, *, min_tile: int = MIN_TILE) -> list[FaceBox]:
    """Every face of a photo, largest first (see the module docstring for the search).

    Args:
        detector: Has ``detect((H, W, 3) uint8 RGB) -> list[FaceBox]`` (a `faces.FaceDetector`).
        image: ``(H, W, 3)`` uint8 RGB array.
        min_tile: The smallest tile side in pixels.

    Returns:
        Face boxes in pixels of `image`, one per face, sorted by area, largest first.
    """
    from emoclip.faces import FaceBox

    height, width = image.shape[:2]
    found: list[FaceBox] = list(detector.detect(image))
    for x, y, side in tiles(width, height, min_tile):
        w, h = min(side, width - x), min(side, height - y)
        for b in detector.detect(np.ascontiguousarray(image[y : y + h, x : x + w])):
            cut = (
                (b.x <= _EDGE and x > 0)
                or (b.y <= _EDGE and y > 0)
                or (b.x + b.w >= w - _EDGE and x + w < width)
                or (b.y + b.h >= h - _EDGE and y + h < height)
            )
            if not cut:
                found.append(FaceBox(b.x + x, b.y + y, b.w, b.h, b.score))
    return _merge(found)


def _merge(boxes: list[FaceBox]) -> list[FaceBox]:
    """One box per face: the best-scoring of detections that overlap (intersection over the
    smaller box > `_SAME_FACE`), sorted largest first."""
    kept: list[FaceBox] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(_overlap(b, k) <= _SAME_FACE for k in kept):
            kept.append(b)
    return sorted(kept, key=lambda b: b.area, reverse=True)


def _overlap(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0 else 0.0


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
    normalised frame embedding for mean pooling). Tracks are the faces, largest first (track 0,
    the primary, gives the clip embedding); boxes are in pixels of the upright image. Without a
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
        boxes = detect_all(parts.faces.locked(), image)[: max(st.max_faces, PHOTO_MAX_FACES)]
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
    warnings = []
    if cfg.face_detection and not boxes:
        warnings.append(
            "no face was found in the image: the whole image (centre crop) was analysed"
        )
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
