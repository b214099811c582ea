"""Tests for emoclip.faces: MediaPipe detection, IoU tracking, square crops and fallbacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skimage_data

from emoclip.faces import (
    FaceBox,
    FaceCrop,
    FaceCropper,
    FaceDetector,
    FaceTracker,
    Track,
    center_crop,
    crop_square,
    default_detector_model,
    square_box,
)
from emoclip.media import iter_frames
from emoclip.testing.media import (
    FACE_IN_PATCH,
    PATCH_SIZE,
    blank_frames,
    face_positions,
    moving_face_frames,
    write_video,
)

ASTRONAUT_FACE = (177.0, 82.0, 95.0, 95.0)
N_FRAMES = 24
FPS = 10.0


def _assert_box_near(box: FaceBox, expected: tuple[float, ...], tol: float) -> None:
    np.testing.assert_allclose(box.as_tuple(), expected, atol=tol)


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as det:
        yield det


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faces")


@pytest.fixture(scope="module")
def one_face_webm(media_dir: Path) -> Path:
    return write_video(media_dir / "one_face.webm", moving_face_frames(N_FRAMES), FPS)


@pytest.fixture(scope="module")
def two_faces_webm(media_dir: Path) -> Path:
    return write_video(media_dir / "two_faces.webm", moving_face_frames(N_FRAMES, faces=2), FPS)


@pytest.fixture(scope="module")
def blank_webm(media_dir: Path) -> Path:
    return write_video(media_dir / "blank.webm", blank_frames(6), FPS)


# ---------------------------------------------------------------------------------------------
# FaceBox and detector
# ---------------------------------------------------------------------------------------------


def test_facebox_geometry() -> None:
    a = FaceBox(0, 0, 10, 10, 0.9)
    b = FaceBox(5, 0, 10, 10, 0.8)
    assert a.area == 100
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.iou(FaceBox(20, 20, 5, 5)) == 0.0
    assert FaceBox(0, 0, 0, 0).iou(FaceBox(0, 0, 0, 0)) == 0.0
    assert a.as_tuple() == (0, 0, 10, 10)
    assert a.center == (5.0, 5.0)


def test_default_model_is_bundled() -> None:
    path = default_detector_model()
    assert path.is_file() and path.stat().st_size == 229_714


def test_detects_the_astronaut(detector: FaceDetector) -> None:
    boxes = detector.detect(skimage_data.astronaut())
    assert len(boxes) == 1
    _assert_box_near(boxes[0], ASTRONAUT_FACE, tol=8)
    assert 0.5 <= boxes[0].score <= 1.0


def test_detection_on_downscaled_copy_maps_back(detector: FaceDetector) -> None:
    import cv2

    big = cv2.resize(skimage_data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    boxes = detector.detect(big)  # longer side 1024 > 640: detected at 640, scaled by 1.6
    assert len(boxes) == 1
    _assert_box_near(boxes[0], tuple(2 * v for v in ASTRONAUT_FACE), tol=16)


def test_boxes_are_clipped_to_the_image(detector: FaceDetector) -> None:
    image = np.ascontiguousarray(skimage_data.astronaut()[:, 200:])  # face cut at the left edge
    boxes = detector.detect(image)
    assert len(boxes) == 1
    box = boxes[0]
    assert box.x >= 0 and box.y >= 0
    assert box.x + box.w <= image.shape[1] and box.y + box.h <= image.shape[0]


def test_detect_rejects_bad_images(detector: FaceDetector) -> None:
    with pytest.raises(ValueError, match="RGB"):
        detector.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        detector.detect(np.zeros((0, 10, 3), np.uint8))


def test_close_is_idempotent_and_final() -> None:
    det = FaceDetector()
    det.close()  # never opened
    det = FaceDetector(min_confidence=0.6)
    assert len(det.detect(skimage_data.astronaut())) == 1
    det.close()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(skimage_data.astronaut())


def test_lazy_creation_is_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from emoclip.faces import detection as faces

    created = []
    real = faces.create_mediapipe_detector

    def counting(*args: object) -> object:
        created.append(1)
        return real(*args)

    monkeypatch.setattr(faces, "create_mediapipe_detector", counting)
    image = skimage_data.astronaut()
    results: list[int] = []
    with FaceDetector() as det:
        threads = [
            threading.Thread(target=lambda: results.append(len(det.detect(image))))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert created == [1] and results == [1, 1, 1, 1]


def test_invalid_detector_arguments() -> None:
    with pytest.raises(ValueError):
        FaceDetector(min_confidence=1.5)
    with pytest.raises(ValueError):
        FaceDetector(detect_max_side=0)


def test_unclosed_detector_exits_cleanly() -> None:
    code = (
        "import numpy as np; from emoclip.faces import FaceDetector; "
        "det = FaceDetector(); det.detect(np.zeros((64, 64, 3), np.uint8))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Exception ignored" not in out.stderr


def test_faces_module_imports_no_mediapipe_or_torch() -> None:
    code = (
        "import sys, emoclip; before = set(sys.modules); import emoclip.faces; "
        "new = set(sys.modules) - before; "
        "bad = [m for m in new if m.split('.')[0] in ('torch', 'mediapipe', 'open_clip')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# ---------------------------------------------------------------------------------------------
# Cropping
# ---------------------------------------------------------------------------------------------


def test_square_box() -> None:
    x, y, w, h = square_box(FaceBox(100, 50, 40, 80), 0.25, (480, 640, 3))
    assert w == h == 100  # max(40, 80) * 1.25
    assert (x + w / 2, y + h / 2) == (120, 90)  # same centre as the box
    # capped at the image's longer side
    assert square_box(FaceBox(0, 0, 300, 300), 1.0, (200, 250))[2] == 250
    with pytest.raises(ValueError):
        square_box(FaceBox(0, 0, 10, 10), -0.1, (10, 10))


def test_crop_square_inside_image() -> None:
    image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    crop = crop_square(image, FaceBox(40, 30, 20, 20), margin=0.0, size=20)
    assert crop.shape == (20, 20, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, image[30:50, 40:60])  # same size: no resampling
    enlarged = crop_square(image, FaceBox(40, 30, 20, 20), margin=0.0, size=64)  # INTER_CUBIC
    shrunk = crop_square(image, FaceBox(10, 10, 80, 80), margin=0.0, size=16)  # INTER_AREA
    assert enlarged.shape == (64, 64, 3) and shrunk.shape == (16, 16, 3)


def test_crop_square_pads_outside_with_black() -> None:
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    # A box in the top-left corner: the square extends 10 px above and left of the image.
    crop = crop_square(image, FaceBox(0, 0, 20, 20), margin=1.0, size=40)
    assert crop.shape == (40, 40, 3)
    assert np.all(crop[:10, :10] == 0) and np.all(crop[:10, :] == 0) and np.all(crop[:, :10] == 0)
    assert np.all(crop[10:, 10:] == 200)
    # Bottom-right corner, and a box entirely outside the image.
    crop = crop_square(image, FaceBox(90, 90, 10, 10), margin=1.0, size=20)
    assert np.all(crop[:15, :15] == 200) and np.all(crop[15:, :] == 0) and np.all(crop[:, 15:] == 0)
    assert not crop_square(image, FaceBox(500, 500, 10, 10), size=8).any()


def test_center_crop() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:, 50:150] = (10, 20, 30)  # the central square
    crop = center_crop(image, size=50)
    assert crop.shape == (50, 50, 3) and crop.dtype == np.uint8
    assert np.all(crop == (10, 20, 30))
    tall = np.zeros((300, 100, 3), dtype=np.uint8)
    tall[100:200] = 255
    assert np.all(center_crop(tall, size=100) == 255)


# ---------------------------------------------------------------------------------------------
# FaceTracker (no mediapipe)
# ---------------------------------------------------------------------------------------------


def _box(x: float, y: float = 0.0, s: float = 50.0) -> FaceBox:
    return FaceBox(x, y, s, s, 0.9)


def test_tracker_follows_two_moving_boxes() -> None:
    tracker = FaceTracker()
    for f in range(10):
        a, b = _box(10 + 5 * f, 0), _box(400 - 5 * f, 200)
        boxes = [a, b] if f % 2 == 0 else [b, a]  # order of detections must not matter
        ids = tracker.update(f, boxes)
        assert ids == ([0, 1] if f % 2 == 0 else [1, 0])
    assert len(tracker.tracks) == 2
    assert all(isinstance(t, Track) and t.length == 10 for t in tracker.tracks)
    assert tracker.tracks[0].frames == list(range(10))
    assert tracker.tracks[0].last_box == _box(55, 0)
    assert tracker.tracks[0].mean_area == pytest.approx(2500)


def test_tracker_ends_track_after_max_missed() -> None:
    tracker = FaceTracker(max_missed=3)
    assert tracker.update(0, [_box(0)]) == [0]
    for f in (1, 2):  # two misses < max_missed: the track survives
        assert tracker.update(f, []) == []
    assert tracker.update(3, [_box(2)]) == [0]
    for f in (4, 5, 6):  # three misses == max_missed: the track ends
        tracker.update(f, [])
    assert tracker.active_tracks == []
    assert tracker.update(7, [_box(2)]) == [1]  # same place, but a new track
    assert [t.frames for t in tracker.tracks] == [[0, 3], [7]]


def test_tracker_iou_threshold_and_greedy_matching() -> None:
    tracker = FaceTracker(iou_threshold=0.3)
    tracker.update(0, [_box(0)])
    assert tracker.update(1, [_box(40)]) == [1]  # IoU(0->40) = 10/90 < 0.3: new track
    tracker = FaceTracker()
    tracker.update(0, [_box(0), _box(100)])
    # IoUs: box@20-track0 .43, box@10-track0 .67, box@95-track1 .82. Greedy takes .82 and .67;
    # track 0 is then taken, so box@20 starts track 2 even though it clears the threshold.
    assert tracker.update(1, [_box(20), _box(10), _box(95)]) == [2, 0, 1]


def test_tracker_primary_and_errors() -> None:
    tracker = FaceTracker()
    assert tracker.primary() is None
    for f in range(6):
        boxes = [_box(0, 0, 40), _box(300, 0, 30)]
        if f < 2:
            boxes.append(_box(600, 0, 60))  # bigger but brief: 2 * 3600 < 6 * 1600
        tracker.update(f, boxes)
    assert tracker.primary().id == 0
    with pytest.raises(ValueError, match="increase"):
        tracker.update(5, [])
    with pytest.raises(ValueError):
        FaceTracker(iou_threshold=0.0)
    with pytest.raises(ValueError):
        FaceTracker(max_missed=0)


# ---------------------------------------------------------------------------------------------
# FaceCropper on synthetic videos
# ---------------------------------------------------------------------------------------------


class _StubDetector:
    """Returns fixed boxes; lets FaceCropper logic be tested without MediaPipe."""

    def __init__(self, boxes: list[FaceBox]) -> None:
        self.boxes = boxes
        self.closed = False

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        return sorted(self.boxes, key=lambda b: b.area, reverse=True)

    def close(self) -> None:
        self.closed = True


def test_cropper_follows_a_moving_face(detector: FaceDetector, one_face_webm: Path) -> None:
    positions = face_positions(N_FRAMES)
    cropper = FaceCropper(detector=detector, size=112)
    xs = []
    for frame in iter_frames(one_face_webm, sample_fps=FPS):
        crops = cropper(frame.image, frame.index)
        assert len(crops) == 1
        crop = crops[0]
        assert isinstance(crop, FaceCrop) and crop.track_id == 0
        assert crop.image.shape == (112, 112, 3) and crop.image.dtype == np.uint8
        px, py = positions[frame.source_index, 0]
        fx, fy, fw, fh = FACE_IN_PATCH
        np.testing.assert_allclose(crop.box.center, (px + fx + fw / 2, py + fy + fh / 2), atol=12)
        assert 0.8 * fw < crop.box.w < 1.3 * fw
        xs.append(crop.box.x)
    assert len(xs) == N_FRAMES
    assert xs[-1] - xs[0] > 300 and np.all(np.diff(xs) > -3)  # moves left to right
    assert len(cropper.tracks) == 1 and cropper.primary_track() is cropper.tracks[0]
    assert cropper.tracks[0].length == N_FRAMES
    assert cropper.frames_without_face == []


def test_cropper_two_faces_keep_their_ids(detector: FaceDetector, two_faces_webm: Path) -> None:
    cropper = FaceCropper(detector=detector, size=64)
    upper_ids, lower_ids = set(), set()
    for frame in iter_frames(two_faces_webm, sample_fps=FPS):
        crops = cropper(frame.image, frame.index)
        assert len(crops) == 2
        for crop in crops:
            (upper_ids if crop.box.y < PATCH_SIZE else lower_ids).add(crop.track_id)
    assert len(upper_ids) == 1 and len(lower_ids) == 1 and upper_ids != lower_ids
    assert len(cropper.tracks) == 2
    assert all(t.length == N_FRAMES for t in cropper.tracks)
    # The faces cross paths horizontally: the upper one goes right, the lower one left.
    upper = cropper.tracks[upper_ids.pop()]
    lower = cropper.tracks[lower_ids.pop()]
    assert upper.boxes[-1].x > upper.boxes[0].x + 300
    assert lower.boxes[-1].x < lower.boxes[0].x - 300


def test_blank_video_fallbacks(detector: FaceDetector, blank_webm: Path) -> None:
    frames = list(iter_frames(blank_webm, sample_fps=FPS))
    assert frames and all(detector.detect(f.image) == [] for f in frames)
    with FaceCropper(detector=detector, size=96) as cropper:
        for f in frames:
            crops = cropper(f.image, f.index)
            assert len(crops) == 1 and crops[0].track_id is None and crops[0].box is None
            np.testing.assert_array_equal(crops[0].image, center_crop(f.image, 96))
        assert cropper.frames_without_face == [f.index for f in frames]
        assert cropper.tracks == [] and cropper.primary_track() is None
    with FaceCropper(detector=detector, fallback="skip") as cropper:
        assert all(cropper(f.image, f.index) == [] for f in frames)
        assert cropper.frames_without_face == [f.index for f in frames]


def test_cropper_max_faces_reset_and_ownership() -> None:
    stub = _StubDetector([_box(10, 10, 20), _box(100, 10, 60), _box(200, 10, 40)])
    image = np.zeros((120, 320, 3), np.uint8)
    cropper = FaceCropper(detector=stub, max_faces=2, size=32)
    crops = cropper(image, 0)
    assert [c.box.w for c in crops] == [60, 40]  # the two largest, largest first
    assert [c.track_id for c in crops] == [0, 1]
    stub.boxes = []
    assert cropper(image, 1)[0].track_id is None
    assert cropper.frames_without_face == [1]
    cropper.reset()
    assert cropper.tracks == [] and cropper.frames_without_face == []
    stub.boxes = [_box(100, 10, 60)]
    assert cropper(image, 0)[0].track_id == 0  # frame indices may restart after reset
    cropper.close()
    cropper.close()
    assert not stub.closed  # a detector passed in belongs to the caller


@pytest.mark.parametrize(
    "kwargs",
    [{"fallback": "blur"}, {"fallback": None}, {"size": 0}, {"margin": -1.0}, {"max_faces": 0}],
)
def test_cropper_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FaceCropper(detector=_StubDetector([]), **kwargs)


class _CountingDetector(_StubDetector):
    """A stub whose boxes follow a script, one list per call; counts calls."""

    def __init__(self, script: list[list[FaceBox]]) -> None:
        super().__init__([])
        self.script, self.calls = list(script), 0

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        self.boxes = self.script[self.calls]
        self.calls += 1
        return super().detect(image)


def test_crop_pair_interpolates_smooth_motion_and_detects_otherwise() -> None:
    image = np.zeros((120, 400, 3), np.uint8)
    # frame 0 detected at x=100; pair (1, 2): frame 2 at x=110 -> frame 1 gets the midpoint, one call
    stub = _CountingDetector([[_box(100)], [_box(110)]])
    cropper = FaceCropper(detector=stub, size=32)
    cropper(image, 0)
    first, second, interpolated = cropper.crop_pair(image, 1, image, 2)
    assert interpolated and stub.calls == 2
    assert first[0].box.x == pytest.approx(105) and second[0].box.x == 110
    assert first[0].track_id == second[0].track_id == 0
    assert cropper.tracks[0].frames == [0, 1, 2]  # tracks updated in frame order
    # a jump (IoU < INTERPOLATE_MIN_IOU) or a new face: the middle frame is detected as well
    stub.script += [[_box(300)], [_box(200)]]
    first, second, interpolated = cropper.crop_pair(image, 3, image, 4)
    assert not interpolated and stub.calls == 4
    assert first[0].box.x == 200 and second[0].box.x == 300
    stub.script += [[_box(300), _box(10, 60)], [_box(300)]]
    _, second, interpolated = cropper.crop_pair(image, 5, image, 6)
    assert not interpolated and len(second) == 2
    # no face before and after: the middle frame has none either, and takes the fallback
    stub.script += [[], [], []]
    cropper(image, 7)
    first, _, interpolated = cropper.crop_pair(image, 8, image, 9)
    assert interpolated and first[0].track_id is None and cropper.frames_without_face == [7, 8, 9]


def test_midpoint_pairing_needs_one_to_one_overlap() -> None:
    from emoclip.faces.tracking import midpoint_boxes

    a, b = [_box(0), _box(200)], [_box(210), _box(10)]
    mid = midpoint_boxes(a, b, 0.5)
    assert [m.x for m in mid] == [205, 5]  # in the order of the later detection
    assert midpoint_boxes(a, b[:1], 0.5) is None
    assert midpoint_boxes([_box(0)], [_box(40)], 0.5) is None  # moved too far to trust a midpoint
