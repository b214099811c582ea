"""The face-detection stacks measured by ``python -m benchmarks.faces`` (see its README section).

Each `stack` is a function ``(H, W, 3) uint8 RGB -> list of FaceBox`` (score = the stack's
confidence); thresholds are left low so that ``--sweep`` can choose one on the calibration part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Detect = Callable[[np.ndarray], list[Any]]


def _today(min_confidence: float) -> Detect:
    """The stack before issue #20: MediaPipe short range over the whole image and tiles down to
    300 px (no call budget), merged, score >= 0.6, no second look."""
    from emoclip.faces import FaceDetector
    from emoclip.faces.search import candidates

    det = FaceDetector(min_confidence)
    return lambda image: candidates(det, image, min_tile=300, budget=10**6)


def _kept(budget: int | None = None) -> Detect:
    """The library's photo search: `find_faces` with the predictor's detector (BlazeFace run by
    LiteRT) and verifier (`budget`: detector calls at most before the fine level, default
    `TILE_BUDGET`)."""
    from emoclip.faces.blazeface import BlazeFace
    from emoclip.faces.search import DETECT_SCORE, TILE_BUDGET, find_faces
    from emoclip.faces.verify import FaceVerifier

    det, verifier = BlazeFace(DETECT_SCORE), FaceVerifier()
    calls = TILE_BUDGET if budget is None else budget
    return lambda image: find_faces(det, verifier, image, budget=calls)


def _previous() -> Detect:
    """The previous session's stack: MediaPipe's ``detect`` over the whole image and tiles within
    42 calls (no fine level), score >= 0.5, presence >= 0.99 or (score >= 0.8 and presence >=
    0.001), the mirrored crop when the crop fails."""
    from emoclip.faces import FaceDetector
    from emoclip.faces.search import find_faces
    from emoclip.faces.verify import FaceVerifier

    det, verifier = FaceDetector(0.5), FaceVerifier()

    class PresenceOnly:  # the previous check had no profile cascade
        presence = verifier.presence

    return lambda image: find_faces(
        det, PresenceOnly(), image, min_score=0.5, budget=42, fine_budget=0
    )


def _search(kind: str, min_tile: int, low: float = 0.3) -> Detect:
    """Tile search (`detect_all`) with short range, full range or both, score >= `low`."""
    from benchmarks.faces_fullrange import FullRangeDetector, nms
    from emoclip.faces import FaceDetector
    from emoclip.faces.search import candidates

    dets: list[Any] = []
    if "short" in kind:
        dets.append(FaceDetector(low))
    if "full" in kind:
        dets.append(FullRangeDetector(low))

    def detect(image: np.ndarray) -> list[Any]:
        found = [b for d in dets for b in candidates(d, image, min_tile=min_tile, budget=10**6)]
        return found if len(dets) == 1 else detect_all_merge(found)

    def detect_all_merge(found: list[Any]) -> list[Any]:
        return nms(found)

    return detect


def _verified(search: Detect, combine: str = "presence") -> Detect:
    """Each box of `search` re-scored by the face-landmark model's face presence."""
    from emoclip.faces import FaceBox
    from emoclip.faces.verify import FaceVerifier

    verifier = FaceVerifier()

    def detect(image: np.ndarray) -> list[Any]:
        out = []
        for b in search(image):
            p = verifier.presence(image, b)
            score = p if combine == "presence" else float(np.sqrt(p * b.score))
            out.append(FaceBox(b.x, b.y, b.w, b.h, score))
        return out

    return detect


def _kept_cv2_nms(iou: float = 0.3) -> Detect:
    """The kept stack with OpenCV's NMS (`cv2.dnn.NMSBoxes`, IoU) in place of the
    intersection-over-the-smaller-box suppression, before and after the check."""
    from benchmarks.faces_fullrange import nms
    from emoclip.faces import FaceBox, FaceDetector
    from emoclip.faces.search import candidates, confidence, order_faces
    from emoclip.faces.verify import FaceVerifier

    det, verifier = FaceDetector(0.5), FaceVerifier()  # the score it was measured at

    def detect(image: np.ndarray) -> list[Any]:
        boxes = nms([b for b in candidates(det, image, same=1.01)], iou)
        out = []
        for b in boxes:
            c = confidence(b.score, verifier.presence(image, b))
            if c is not None:
                out.append(FaceBox(b.x, b.y, b.w, b.h, c))
        return order_faces(nms(out, iou))

    return detect


def stack(name: str) -> Detect:
    """The detection function of the stack called `name`: ``today``, ``previous``, ``kept``, or
    ``kept@<budget>``, ``<short|full|short+full>@<min tile>[+verify|+geo]`` (e.g.
    ``short+full@150+verify``)."""
    if name == "today":
        return _today(0.6)
    if name == "kept":
        return _kept()
    if name == "previous":
        return _previous()
    if name.startswith("kept@"):  # the kept stack within another call budget (kept@210)
        return _kept(int(name[5:]))
    if name == "kept-cv2-nms":
        return _kept_cv2_nms()
    base, _, rest = name.partition("@")
    tile, _, check = rest.partition("+")
    search = _search(base, int(tile or 300))
    if check == "verify":
        return _verified(search)
    if check == "geo":
        return _verified(search, "geo")
    return search
