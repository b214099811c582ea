"""``python -m benchmarks.faces_tracking``: today's IoU/distance `FaceTracker` against a
maintained ByteTrack (Roboflow's ``trackers`` package, if importable) on generated videos of
several people crossing, with the same MediaPipe detections.

Each video: 3-4 real faces (the evaluation set's sources) walking across a real scene at
different speeds and depths, crossing each other (the nearer one pasted over), plus two
hard non-faces standing still. Per tracker: identity switches (a person's matched track id
changes), fragments (track ids per person beyond the first), persons' frames covered, and tracks
that are never a person (on a decoy) that the verification would have to remove.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

FRAMES = 40  # sampled frames per video (~5 s at the pipeline's 7.5 fps)
VIDEOS = 8


def make_video(seed: int) -> tuple[list[np.ndarray], list[list[tuple[float, float, float, float]]]]:
    """Frames ``(480, 640, 3)`` and, per frame, each person's face box (people in fixed order)."""
    import cv2

    from emoclip.testing.faces_compose import face_patch, paste
    from emoclip.testing.faces_decoys import draw_decoy, scene_photo
    from emoclip.testing.faces_eval import FACE_SOURCES, face_source

    rng = np.random.default_rng([7, seed])
    scene = scene_photo(("coffee", "china", "flower", "rocket")[seed % 4])
    background = cv2.resize(scene, (640, 480), interpolation=cv2.INTER_AREA)
    people = []
    for i in range(int(rng.integers(3, 5))):
        source = list(FACE_SOURCES)[i % 3]
        size = int(rng.integers(50, 110))
        patch, alpha, box, _ = face_patch(face_source(source), FACE_SOURCES[source], size, rng)
        left = i % 2 == 0
        x0 = -20.0 if left else 640.0 - patch.shape[1] + 20
        speed = float(rng.uniform(6, 14)) * (1 if left else -1)
        y0 = float(rng.uniform(40, 480 - patch.shape[0] - 10))
        people.append((patch, alpha, box, x0, y0, speed, size))
    decoys = []
    for kind in ("cartoon", "lamp"):
        patch, alpha = draw_decoy(kind, int(rng.integers(60, 110)), rng)
        decoys.append((patch, alpha, (int(rng.integers(0, 640 - patch.shape[1])), 10)))
    frames, truth = [], []
    for f in range(FRAMES):
        canvas = background.copy()
        for patch, alpha, at in decoys:
            paste(canvas, patch, alpha, at)
        boxes = []
        for patch, alpha, _box, x0, y0, speed, _ in sorted(people, key=lambda p: p[6]):
            x = int(round(x0 + speed * f))
            x = max(0, min(640 - patch.shape[1], x))
            paste(canvas, patch, alpha, (x, int(y0)))
        for patch, _, box, x0, y0, speed, _ in people:
            x = max(0, min(640 - patch.shape[1], int(round(x0 + speed * f))))
            boxes.append((box[0] + x, box[1] + int(y0), box[2], box[3]))
        frames.append(canvas)
        truth.append(boxes)
    return frames, truth


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return ix * iy / union if union > 0 else 0.0


def ours() -> Any:
    from emoclip.faces import FaceTracker

    tracker = FaceTracker()

    def update(f: int, boxes: list[Any]) -> list[int]:
        return tracker.update(f, boxes)

    return update


def bytetrack() -> Any:
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(
        frame_rate=7.5, minimum_consecutive_frames=1, track_activation_threshold=0.5
    )

    def update(f: int, boxes: list[Any]) -> list[int]:
        if not boxes:
            tracker.update(sv.Detections.empty())
            return []
        xyxy = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in boxes], np.float32)
        out = tracker.update(
            sv.Detections(
                xyxy=xyxy,
                confidence=np.array([b.score for b in boxes], np.float32),
                class_id=np.zeros(len(boxes), int),
            )
        )
        ids = []
        for b in xyxy:  # output order may differ: match back by IoU
            j = int(np.argmax([_iou(tuple(b), tuple(o)) for o in out.xyxy])) if len(out) else -1
            ids.append(int(out.tracker_id[j]) if j >= 0 else -1)
        return ids

    return update


def score(
    make: Any, videos: list[tuple[list[np.ndarray], list[Any], list[list[Any]]]]
) -> dict[str, float]:
    """Identity switches, extra fragments, covered share and non-person tracks over `videos`."""
    switches = fragments = covered = total = 0
    stray: set[tuple[int, int]] = set()
    for v, (_, truth, detections) in enumerate(videos):
        update = make()
        seen: dict[int, list[int]] = {}
        for f, boxes in enumerate(detections):
            ids = update(f, boxes)
            for b, tid in zip(boxes, ids):
                box = (b.x, b.y, b.w, b.h)
                best = max(range(len(truth[f])), key=lambda p: _iou(box, truth[f][p]))
                if _iou(box, truth[f][best]) >= 0.3 and tid >= 0:
                    seen.setdefault(best, []).append(tid)
                elif tid >= 0:
                    stray.add((v, tid))
            total += len(truth[f])
        for ids in seen.values():
            covered += len(ids)
            switches += sum(1 for a, b in zip(ids, ids[1:]) if a != b)
            fragments += len(set(ids)) - 1
    return {
        "identity switches": switches,
        "extra fragments": fragments,
        "person frames tracked": covered / max(1, total),
        "tracks on non-persons": len(stray),
    }


def verification(videos: list[tuple[list[np.ndarray], list[Any], list[list[Any]]]]) -> None:
    """Tracks verified as faces, on people and on the non-faces, by the check video used before
    (presence on the box's crop, `confidence`) and by the photos' check (`verify_box`), each
    asked as a `FaceCropper` asks it: on a track's 1st, 2nd, 4th, 8th, ... frame until it passes."""
    from emoclip.faces import FaceTracker
    from emoclip.faces.search import confidence, verify_box
    from emoclip.faces.verify import FaceVerifier

    verifier = FaceVerifier()
    checks = {
        "presence on the crop (before)": lambda im, b: (
            confidence(b.score, verifier.presence(im, b)) is not None
        ),
        "verify_box (the photos' check)": lambda im, b: verify_box(verifier, im, b) is not None,
    }
    for name, check in checks.items():
        person_tracks = person_ok = stray_tracks = stray_ok = 0
        for frames, truth, detections in videos:
            tracker, length, on_person, verified = FaceTracker(), {}, {}, {}
            for f, boxes in enumerate(detections):
                for b, tid in zip(boxes, tracker.update(f, boxes)):
                    length[tid] = length.get(tid, 0) + 1
                    hit = max((_iou((b.x, b.y, b.w, b.h), t) for t in truth[f]), default=0.0)
                    on_person[tid] = on_person.get(tid, False) or hit >= 0.3
                    n = length[tid]
                    if not verified.get(tid) and not n & (n - 1):
                        verified[tid] = check(frames[f], b)
            for tid, person in on_person.items():
                if person:
                    person_tracks, person_ok = person_tracks + 1, person_ok + bool(verified[tid])
                else:
                    stray_tracks, stray_ok = stray_tracks + 1, stray_ok + bool(verified[tid])
        print(
            f"{name}: person tracks verified {person_ok}/{person_tracks}, "
            f"non-person tracks verified {stray_ok}/{stray_tracks}"
        )


def main() -> int:
    from emoclip.faces import FaceDetector

    videos = []
    with FaceDetector(0.5) as det:
        for seed in range(VIDEOS):
            frames, truth = make_video(seed)
            videos.append((frames, truth, [det.detect(f) for f in frames]))
    rows = {"FaceTracker (IoU/distance)": score(ours, videos)}
    try:
        rows["ByteTrack (trackers)"] = score(bytetrack, videos)
    except ImportError as e:
        print(f"ByteTrack not measured: {e}")
    people = sum(len(t[0]) for _, t, _ in videos)
    print(f"{VIDEOS} videos, {FRAMES} sampled frames each, {people} people")
    for name, row in rows.items():
        print(name, {k: round(v, 3) for k, v in row.items()})
    verification(videos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
