"""Every face of a photo: a multi-scale tile search for candidates (`candidates`), each candidate
checked by the face-presence model, the profile cascade or MTCNN's ONet (`find_faces`), one box
per face, best first (`order_faces`).

BlazeFace (short range) sees its input at 128x128 and finds faces down to about an eighth of it:
enough for a video frame of one subject, not for a group photo. Photos are therefore searched at
several scales: the whole image, then square tiles of half, a quarter, ... of its longer side
overlapping by half, down to `MIN_TILE` pixels or while the search stays within `TILE_BUDGET`
detector calls (a 1024x768 photo goes down to 256 px tiles, a 1080p one to 480 px tiles, faces
of ~60 px), then, on photos up to about 1024x768, a fine level of 128 px tiles (`FINE_TILE`, at
most `FINE_BUDGET` of them) for faces of ~32 px. A face at most half a tile wide lies wholly inside
some tile, so detections that touch a tile's inner edge are dropped (the face is whole in a
neighbour or at a coarser scale) and overlapping ones merged. The detector is BlazeFace run
directly by LiteRT (`emoclip.faces.blazeface`): each tile level is cut from the image shrunk
once to 128 px a tile.

All images are ``(H, W, 3)`` uint8 RGB; boxes are `FaceBox` in pixels of the image.
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np

from emoclip.faces.boxes import FaceBox

__all__ = [
    "DETECT_SCORE",
    "FINE_BUDGET",
    "FINE_STRIDE",
    "FINE_TILE",
    "MIN_PRESENCE",
    "MIN_TILE",
    "ONET_MIN",
    "ONET_SCORE",
    "PROFILE_PRESENCE",
    "PROFILE_SCORE",
    "SEARCH_SCORE",
    "TILE_BUDGET",
    "Verifier",
    "SURE_PRESENCE",
    "SURE_SCORE",
    "candidates",
    "confidence",
    "find_faces",
    "order_faces",
    "verify_box",
    "suppress",
    "tiles",
]

MIN_TILE = 128  # the smallest tile side: BlazeFace's own input
TILE_BUDGET = 42  # detector calls per photo at most (the whole image + tiles): P9's cost
# Small faces (32-48 px) are found in tiles of the detector's own 128 px input; that level has
# ~165 tiles on a 1024x768 photo and 464 on a 1080p one, so it is searched only when it has at
# most FINE_BUDGET tiles (photos up to about 1024x768): a 1080p photo keeps P9's cost (README).
FINE_TILE = 128
FINE_STRIDE = 64  # tiles overlap by half (a face of <= 64 px lies wholly in some tile)
FINE_BUDGET = 170  # a cost limit, not a tuned number: 1024x768 and smaller get the level
# Chosen on the calibration part of the face evaluation set only (`python -m
# benchmarks.faces_calibrate --grid half,quarter,128`, replayed from BlazeFace's record of that
# part; benchmarks/README.md "Faces in the wild"): the most recall >= 48 px at <= 1 false face
# per 20 images of hard non-faces, then the fewest false faces on the face photos, each number
# from the middle of the range where the figures stay the same. The check also tries the
# mirrored crop of a box that fails (`find_faces`).
DETECT_SCORE = 0.4  # BlazeFace keeps anchors scoring this much (its weighted suppression
# averages them into a box), as the calibration record did: a box averaged over anchors >= 0.6
# only measured 2 more false faces on the calibration part's non-face images (1.25 per 20)
SEARCH_SCORE = 0.6  # BlazeFace score a candidate needs (0.4-0.65: the same recall; 0.6: fewer
# false faces on the face photos, 6 vs 8)
MIN_PRESENCE = 0.99  # face-presence probability that makes a candidate a face ...
SURE_SCORE = 0.8  # ... or, for a candidate BlazeFace is this sure of (profiles, a hand or a
SURE_PRESENCE = 0.001  # camera over an eye: the landmark model wants frontal faces), this much
PROFILE_SCORE = 0.65  # ... or, with this score and this much presence, when OpenCV's profile
PROFILE_PRESENCE = 0.1  # cascade finds a face in the crop (`Verifier.profile`): profiles the
# landmark model doubts (recall >= 48 px 0.942 -> 0.954, no more false faces on non-face
# images; the score 0.6-0.7 and presence 0.05-0.3 give the same figures)
ONET_SCORE = 0.75  # ... or, with this score, when MTCNN's ONet gives the box's crop at least
ONET_MIN = 0.95  # this face probability (`Verifier.onet`), whatever the presence: faces turned
# or in profile that both other checks doubt (fourth round, `python -m benchmarks.faces_mtcnn`:
# recall >= 48 px 0.954 -> 0.965, < 48 px 0.857 -> 0.876, no more false faces; ONet 0.9-0.97
# give the same recall >= 48 px; score 0.7 passes skin-coloured blobs, 0.8 adds nothing)
_EDGE = 2.0  # pixels: a detection this close to a tile's inner edge is cut by it
_SAME_FACE = 0.5  # intersection over the smaller box above which two candidates are one face
_SAME_VERIFIED = 0.3  # ... and two verified faces (a face is never inside another face)


class Verifier(Protocol):
    """What `find_faces` needs of a second look (`emoclip.faces.verify.FaceVerifier` is one):
    the face-presence probability of a box, and whether a profile face is in it (a verifier
    may also have ``onet(image, box) -> float``, MTCNN's face probability, asked last)."""

    def presence(self, image: np.ndarray, box: FaceBox) -> float: ...

    def profile(self, image: np.ndarray, box: FaceBox) -> bool: ...


def tiles(
    width: int,
    height: int,
    min_tile: int = MIN_TILE,
    budget: int = TILE_BUDGET,
    fine_budget: int = FINE_BUDGET,
) -> list[tuple[int, int, int]]:
    """Square tiles ``(x, y, side)`` of the multi-scale search, coarsest first (the whole image
    is not among them). Sides halve from half the longer side down to `min_tile`, a level only
    when the whole search (image + tiles) stays within `budget` calls; tiles overlap by half a
    side and cover the image (the last row/column is aligned to the edge). Then, for small
    faces, a level of `FINE_TILE` px tiles (the detector's own input, every `FINE_STRIDE` px)
    when it has at most `fine_budget` tiles and is finer than the finest level above."""
    out: list[tuple[int, int, int]] = []
    side = max(width, height) // 2
    while side >= min_tile:
        level = [(x, y, side) for y in _starts(height, side) for x in _starts(width, side)]
        if 1 + len(out) + len(level) > budget:
            break
        out += level
        side //= 2
    finest = out[-1][2] if out else max(width, height)
    if FINE_TILE < finest:
        xs, ys = _starts(width, FINE_TILE, FINE_STRIDE), _starts(height, FINE_TILE, FINE_STRIDE)
        if len(xs) * len(ys) <= fine_budget:
            out += [(x, y, FINE_TILE) for y in ys for x in xs]
    return out


def _starts(length: int, side: int, stride: int | None = None) -> list[int]:
    if length <= side:
        return [0]
    stride = stride or side // 2
    starts = list(range(0, length - side + 1, stride))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def candidates(
    detector: Any,
    image: np.ndarray,
    *,
    min_tile: int = MIN_TILE,
    budget: int = TILE_BUDGET,
    fine_budget: int = FINE_BUDGET,
    same: float = _SAME_FACE,
) -> list[FaceBox]:
    """Candidate faces of a photo from the tile search (see the module), one box per place,
    best score first.

    Args:
        detector: Has ``detect((H, W, 3) uint8 RGB) -> list[FaceBox]`` (a `faces.FaceDetector`)
            or ``detect_many`` (`emoclip.faces.blazeface.BlazeFace`, which the library uses).
        image: ``(H, W, 3)`` uint8 RGB array.
        min_tile: The smallest tile side in pixels.
        budget: Detector calls at most, before the fine level.
        fine_budget: Tiles of the fine level at most (0: none).
        same: Intersection over the smaller box above which two detections are one face
            (above 1: every detection is kept).
    """
    height, width = image.shape[:2]
    places = [(0, 0, max(width, height)), *tiles(width, height, min_tile, budget, fine_budget)]
    inputs = _tile_inputs(image, places, getattr(detector, "input_size", None))
    found: list[FaceBox] = []
    for (x, y, side), (_, scale, ox, oy), boxes in zip(
        places, inputs, _detect_all(detector, [i[0] for i in inputs])
    ):
        w, h = min(side, width - x), min(side, height - y)  # the tile in image pixels
        for b in boxes:
            b = FaceBox(
                ox + b.x / scale - x, oy + b.y / scale - y, b.w / scale, b.h / scale, b.score
            )
            cut = (
                (b.x <= _EDGE and x > 0)
                or (b.y <= _EDGE and y > 0)
                or (b.x + b.w >= w - _EDGE and x + w < width)
                or (b.y + b.h >= h - _EDGE and y + h < height)
            )
            if not cut:
                found.append(FaceBox(b.x + x, b.y + y, b.w, b.h, b.score))
    return suppress(found, same)


def _tile_inputs(
    image: np.ndarray, places: list[tuple[int, int, int]], size: int | None
) -> list[tuple[np.ndarray, float, float, float]]:
    """Per tile ``(x, y, side)``, what the detector sees: ``(pixels, scale, x0, y0)``, where a
    pixel (u, v) of `pixels` is (x0 + u / scale, y0 + v / scale) of `image`. For a detector of
    square input `size` (BlazeFace: 128), each tile level is cut from the image shrunk once
    (``INTER_AREA``) to that size a tile, not each tile shrunk on its own; else tiles are crops."""
    height, width = image.shape[:2]
    shrunk: dict[int, tuple[np.ndarray, float]] = {}
    out = []
    for x, y, side in places:
        if size is None or side <= size:
            crop = image[y : y + side, x : x + side]
            out.append((np.ascontiguousarray(crop), 1.0, float(x), float(y)))
            continue
        if side not in shrunk:
            scale = size / side
            dims = (max(1, round(width * scale)), max(1, round(height * scale)))
            shrunk[side] = (cv2.resize(image, dims, interpolation=cv2.INTER_AREA), scale)
        small, scale = shrunk[side]
        xs = min(round(x * scale), max(0, small.shape[1] - size))
        ys = min(round(y * scale), max(0, small.shape[0] - size))
        crop = small[ys : ys + size, xs : xs + size]
        out.append((np.ascontiguousarray(crop), scale, xs / scale, ys / scale))
    return out


def _detect_all(detector: Any, images: list[np.ndarray]) -> list[list[FaceBox]]:
    """Each image's boxes: in one go when the detector can (`BlazeFace.detect_many`), else one
    `detect` call per image."""
    if hasattr(detector, "detect_many"):
        return [[d.box for d in dets] for dets in detector.detect_many(images)]
    return [list(detector.detect(im)) for im in images]


def find_faces(
    detector: Any,
    verifier: Verifier | None,
    image: np.ndarray,
    *,
    min_score: float = SEARCH_SCORE,
    min_presence: float = MIN_PRESENCE,
    min_tile: int = MIN_TILE,
    budget: int = TILE_BUDGET,
    fine_budget: int = FINE_BUDGET,
) -> list[FaceBox]:
    """The faces of a photo: candidates scoring at least `min_score`, each kept only when it
    passes the `verifier`'s face-presence check (`confidence`, which becomes its score) on its
    crop or, failing that, on the mirrored crop, or with the profile cascade or MTCNN's ONet;
    one box per face, ordered by `order_faces`. Without a verifier the detector's score is the
    confidence.

    Returns:
        Verified face boxes in pixels of `image`, best first.
    """
    boxes = [
        b
        for b in candidates(
            detector, image, min_tile=min_tile, budget=budget, fine_budget=fine_budget
        )
        if b.score >= min_score
    ]
    if verifier is not None:
        boxes = _verified(verifier, image, boxes, min_presence)
    return order_faces(suppress(boxes, _SAME_VERIFIED), min_presence)


def _verified(
    verifier: Verifier, image: np.ndarray, boxes: list[FaceBox], min_presence: float
) -> list[FaceBox]:
    """The `boxes` that pass `verify_box`, scored by their confidence."""
    out = []
    for b in boxes:
        c = verify_box(verifier, image, b, min_presence)
        if c is not None:
            out.append(FaceBox(b.x, b.y, b.w, b.h, c))
    return out


def verify_box(
    verifier: Verifier, image: np.ndarray, box: FaceBox, min_presence: float = MIN_PRESENCE
) -> float | None:
    """The verified confidence of one candidate `box` of `image` (``(H, W, 3)`` uint8 RGB), or
    None when it is not a face: the one check of photos and of video tracks.

    The face-presence check on the box's crop; failing that, on the mirrored crop (the landmark
    model doubts faces turned one way more than the other); then the profile cascade, then
    MTCNN's ONet, each asked only when the detector's score allows it to pass (`confidence`).
    All chosen on the calibration part of the evaluation set.
    """
    presence = verifier.presence(image, box)
    c = confidence(box.score, presence, min_presence)
    if c is None:
        presence = max(presence, verifier.presence(*_mirrored_around(image, box)))
        c = confidence(box.score, presence, min_presence)
    if c is None and box.score >= PROFILE_SCORE and presence >= PROFILE_PRESENCE:
        profile = getattr(verifier, "profile", None)
        c = confidence(
            box.score, presence, min_presence, profile is not None and profile(image, box)
        )
    onet = getattr(verifier, "onet", None)
    if c is None and box.score >= ONET_SCORE and onet is not None:
        c = confidence(box.score, presence, min_presence, onet=onet(image, box))
    return c


def _mirrored_around(image: np.ndarray, box: FaceBox) -> tuple[np.ndarray, FaceBox]:
    """The part of `image` around `box` (two box sides on every side, clipped to the image),
    flipped left-right, and the box in it: every crop of the box a check cuts (its square
    enlarged by at most one side) is the crop it would cut from the whole mirrored image,
    without copying the whole image per box. The part is shifted from the mirrored image by an
    even number of pixels, so that the crops' rounding (half to even) lands on the same pixels."""
    height, width = image.shape[:2]
    reach = 2.0 * max(box.w, box.h)
    x0, x1 = max(int(box.x - reach), 0), min(int(np.ceil(box.x + box.w + reach)), width)
    y0, y1 = max(int(box.y - reach), 0), min(int(np.ceil(box.y + box.h + reach)), height)
    x1 += (width - x1) % 2  # the part's left edge in the mirrored image: width - x1
    y0 -= y0 % 2
    part = np.ascontiguousarray(image[y0:y1, x0:x1][:, ::-1])
    flipped = FaceBox((x1 - x0) - (box.x - x0) - box.w, box.y - y0, box.w, box.h, box.score)
    return part, flipped


def confidence(
    score: float,
    presence: float,
    min_presence: float = MIN_PRESENCE,
    profile: bool = False,
    onet: float = 0.0,
) -> float | None:
    """The verified confidence of a candidate (detector `score`, face `presence`, both in
    [0, 1]; `profile`: the profile cascade found a face in it; `onet`: MTCNN's ONet face
    probability, 0 when not asked): its `presence` when that is at least `min_presence`, or
    when the detector is sure (`SURE_SCORE`) and `presence` >= `SURE_PRESENCE`, or when
    `profile` and `score` >= `PROFILE_SCORE` and `presence` >= `PROFILE_PRESENCE`, or when
    `score` >= `ONET_SCORE` and `onet` >= `ONET_MIN`; None when it is not a face."""
    if presence >= min_presence or (score >= SURE_SCORE and presence >= SURE_PRESENCE):
        return presence
    if profile and score >= PROFILE_SCORE and presence >= PROFILE_PRESENCE:
        return presence
    if score >= ONET_SCORE and onet >= ONET_MIN:
        return presence
    return None


def order_faces(boxes: list[FaceBox], min_presence: float = MIN_PRESENCE) -> list[FaceBox]:
    """Faces best first: those whose verified confidence (score) reaches `min_presence` (the
    face-presence check passed them), then those kept on the detector's word; within each, the
    larger first. Never by size alone: a large box that is barely a face never comes before a
    clear face."""
    return sorted(boxes, key=lambda b: (b.score < min_presence, -b.area))


def suppress(boxes: list[FaceBox], same: float) -> list[FaceBox]:
    """Non-maximum suppression: the best-scoring of boxes whose intersection over the smaller
    box exceeds `same`, best first."""
    kept: list[FaceBox] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(_overlap(b, k) <= same for k in kept):
            kept.append(b)
    return kept


def _overlap(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0 else 0.0
