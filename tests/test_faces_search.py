"""Faces in the wild (issue #20): the photo search keeps only verified faces, one box per face,
best first; video tracks need the same verification; with no face the answer says so and names
its scope. Detectors and verifiers here are small fakes with known answers; the real models are
measured on the evaluation set (`tests/test_faces_eval.py`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emoclip.faces import FaceBox, FaceCropper
from emoclip.faces.search import (
    FINE_BUDGET,
    FINE_TILE,
    MIN_PRESENCE,
    ONET_MIN,
    ONET_SCORE,
    PROFILE_PRESENCE,
    PROFILE_SCORE,
    TILE_BUDGET,
    confidence,
    find_faces,
    order_faces,
    tiles,
    verify_box,
)
from emoclip.faces.verify import FaceVerifier


class FakeDetector:
    """Returns fixed boxes for the whole image and nothing for tiles."""

    def __init__(self, boxes: list[FaceBox]) -> None:
        self.boxes, self.shape = boxes, None

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        if self.shape is None:
            self.shape = image.shape
        return list(self.boxes) if image.shape == self.shape else []

    def close(self) -> None:
        pass


class FakeVerifier:
    """Presence by box position: boxes whose left edge is in `faces` are faces."""

    def __init__(self, presence: dict[float, float]) -> None:
        self.presence_of, self.calls = presence, 0

    def presence(self, image: np.ndarray, box: FaceBox) -> float:
        self.calls += 1
        return self.presence_of.get(box.x, 0.0)


def test_order_is_by_verified_confidence_then_size_never_size_alone():
    big_doubtful = FaceBox(0, 0, 300, 300, 0.02)  # kept on the detector's word only
    small_clear = FaceBox(400, 0, 60, 60, 0.999)
    mid_clear = FaceBox(500, 0, 120, 120, 0.995)
    tiny_doubtful = FaceBox(700, 0, 40, 40, 0.5)
    assert order_faces([tiny_doubtful, big_doubtful, small_clear, mid_clear]) == [
        mid_clear,  # both verified: the larger first
        small_clear,
        big_doubtful,
        tiny_doubtful,
    ]


def test_a_box_failing_verification_is_not_a_face_whatever_its_size():
    image = np.zeros((300, 400, 3), np.uint8)
    frame = FaceBox(10, 10, 250, 250, 0.95)  # the largest and most confident detection
    face = FaceBox(300, 40, 60, 60, 0.7)
    verifier = FakeVerifier({300: 0.996, 10: 0.0})
    found = find_faces(FakeDetector([frame, face]), verifier, image, budget=1)
    assert found == [FaceBox(300, 40, 60, 60, 0.996)]  # score = the verified confidence
    assert verifier.calls == 3  # the frame failed on its crop and on the mirrored crop


def test_a_box_failing_on_its_crop_is_checked_again_mirrored():
    from emoclip.faces.crops import crop_square

    image = np.zeros((300, 400, 3), np.uint8)
    image[:, :50] = 255  # a white band at the left: the box's crop is half white, its mirror
    profile = FaceBox(20, 40, 60, 60, 0.7)  # image's crop (a white band at the right) is not
    seen: list[np.ndarray] = []

    class Mirrored(FakeVerifier):
        def presence(self, image: np.ndarray, box: FaceBox) -> float:
            crop = crop_square(image, box, margin=0.5, size=90)
            seen.append(crop)
            return 0.995 if crop[:, -10:].mean() > crop[:, :10].mean() else 0.3

    verifier = Mirrored({})
    found = find_faces(FakeDetector([profile]), verifier, image, budget=1)
    assert found == [FaceBox(20, 40, 60, 60, 0.995)]  # kept, at its place in the image
    assert len(seen) == 2 and np.array_equal(seen[1], seen[0][:, ::-1])  # its crop, mirrored


def test_candidates_below_the_search_score_are_not_checked():
    image = np.zeros((300, 400, 3), np.uint8)
    weak = FaceBox(10, 10, 50, 50, 0.1)
    verifier = FakeVerifier({10: 1.0})
    assert find_faces(FakeDetector([weak]), verifier, image, budget=1) == []
    assert verifier.calls == 0


def test_one_box_per_face_after_verification():
    image = np.zeros((300, 400, 3), np.uint8)
    face = FaceBox(100, 100, 100, 100, 0.9)
    part = FaceBox(120, 90, 60, 60, 0.8)  # a tile's box on the same face (half inside it)
    verifier = FakeVerifier({100: 0.999, 120: 0.995})
    assert find_faces(FakeDetector([face, part]), verifier, image, budget=1) == [
        FaceBox(100, 100, 100, 100, 0.999)
    ]


def test_a_face_the_detector_is_sure_of_needs_only_a_faint_presence():
    assert confidence(0.85, 0.01) == 0.01  # a profile: kept, ranked after verified faces
    assert confidence(0.85, 0.0) is None  # nothing face-like at all
    assert confidence(0.6, 0.5) is None  # neither sure nor verified
    assert confidence(0.6, 0.995) == 0.995


def test_a_profile_the_cascade_finds_needs_a_fair_score_and_some_presence():
    assert confidence(0.7, 0.2, profile=True) == 0.2  # kept, ranked after verified faces
    assert confidence(0.7, 0.2) is None  # the same box without the cascade's word
    assert confidence(PROFILE_SCORE - 0.01, 0.2, profile=True) is None  # score too low
    assert confidence(0.7, PROFILE_PRESENCE / 2, profile=True) is None  # presence too low


def test_a_box_onet_is_sure_of_needs_a_high_score_and_no_presence():
    assert confidence(0.78, 0.0, onet=0.99) == 0.0  # kept, ranked after verified faces
    assert confidence(0.78, 0.0, onet=ONET_MIN - 0.01) is None  # ONet not sure enough
    assert confidence(ONET_SCORE - 0.01, 0.5, onet=0.999) is None  # score too low
    assert confidence(0.78, 0.0) is None  # ONet not asked


class OnetVerifier(FakeVerifier):
    """Presence by position, no profile found, and ONet's probability by position."""

    def __init__(self, presence: dict[float, float], onet: dict[float, float]) -> None:
        super().__init__(presence)
        self.onet_of, self.asked = onet, 0

    def profile(self, image: np.ndarray, box: FaceBox) -> bool:
        return False

    def onet(self, image: np.ndarray, box: FaceBox) -> float:
        self.asked += 1
        return self.onet_of.get(box.x, 0.0)


def test_onet_is_asked_last_and_only_about_doubted_sure_enough_candidates():
    image = np.zeros((300, 400, 3), np.uint8)
    clear = FaceBox(10, 10, 80, 80, 0.9)  # passes the presence check: ONet is not asked
    turned = FaceBox(150, 10, 80, 80, 0.78)  # doubted by the landmark model, ONet is sure
    blob = FaceBox(300, 10, 80, 80, 0.78)  # doubted, and ONet is not sure
    weak = FaceBox(240, 150, 80, 80, ONET_SCORE - 0.05)  # below ONET_SCORE: not asked
    verifier = OnetVerifier(
        {10: 0.999, 150: 0.0, 300: 0.0, 240: 0.0}, {150: 0.99, 300: 0.5, 240: 0.999}
    )
    found = find_faces(FakeDetector([clear, turned, blob, weak]), verifier, image)
    assert [b.x for b in found] == [10, 150]  # the verified face first
    assert verifier.asked == 2  # the turned face and the blob


def test_the_library_verifier_asks_onet_about_the_cameraman():
    from emoclip.testing.faces_eval import FACE_SOURCES, face_source

    verifier = FaceVerifier()
    camera = face_source("camera")
    assert verifier.onet(camera, FaceBox(*FACE_SOURCES["camera"])) >= ONET_MIN
    assert verifier.onet(camera, FaceBox(5, 5, 87, 87)) < 0.5  # the sky in a corner


def test_a_predictors_video_detector_asks_the_same_checks():
    import threading

    from emoclip.inference.detector import LockedDetector
    from emoclip.testing.faces_eval import FACE_SOURCES, face_source

    camera, box = face_source("camera"), FaceBox(*FACE_SOURCES["camera"])
    verifier = FaceVerifier()
    shared = LockedDetector(None, threading.Lock(), verifier)
    assert shared.onet(camera, box) == verifier.onet(camera, box) >= ONET_MIN
    assert shared.profile(camera, box) is verifier.profile(camera, box) is True
    bare = LockedDetector(None, threading.Lock())  # a predictor without a verifier
    assert (bare.presence(camera, box), bare.profile(camera, box), bare.onet(camera, box)) == (
        1.0,
        False,
        0.0,
    )


class ProfileVerifier(FakeVerifier):
    """Presence by position, and the profile cascade's answer by position."""

    def __init__(self, presence: dict[float, float], profiles: set[float]) -> None:
        super().__init__(presence)
        self.profiles, self.asked = profiles, 0

    def profile(self, image: np.ndarray, box: FaceBox) -> bool:
        self.asked += 1
        return box.x in self.profiles


def test_the_profile_cascade_is_asked_only_about_doubted_candidates():
    image = np.zeros((300, 400, 3), np.uint8)
    clear = FaceBox(10, 10, 80, 80, 0.9)  # passes the presence check: the cascade is not asked
    profile = FaceBox(150, 10, 80, 80, 0.7)  # doubted, but the cascade sees a profile
    lamp = FaceBox(300, 10, 80, 80, 0.7)  # doubted, and the cascade sees nothing
    weak = FaceBox(240, 150, 80, 80, 0.62)  # below PROFILE_SCORE: not asked
    verifier = ProfileVerifier({10: 0.999, 150: 0.3, 300: 0.3, 240: 0.3}, profiles={150, 240})
    found = find_faces(FakeDetector([clear, profile, lamp, weak]), verifier, image)
    assert [b.x for b in found] == [10, 150]  # the verified face first
    assert verifier.asked == 2  # the profile and the lamp


def test_the_profile_cascade_sees_the_cameraman_and_not_a_cat():
    from skimage import data

    verifier = FaceVerifier()
    camera = np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1))
    assert verifier.profile(camera, FaceBox(182, 124, 87, 87))  # a man in profile
    assert not verifier.profile(data.chelsea(), FaceBox(140, 40, 200, 200))
    assert not verifier.profile(np.full((300, 300, 3), 128, np.uint8), FaceBox(100, 100, 99, 99))


def test_tiles_respect_the_budget_and_cover_the_image():
    for w, h in [(1920, 1080), (1080, 1920), (1024, 768), (4000, 3000), (960, 640)]:
        found = tiles(w, h)
        coarse = [t for t in found if t[2] != FINE_TILE]
        assert 1 + len(coarse) <= TILE_BUDGET
        assert len(found) - len(coarse) <= FINE_BUDGET
        for side in {s for _, _, s in found}:
            mask = np.zeros((h, w), bool)
            for x, y, s in found:
                if s == side:
                    mask[y : y + s, x : x + s] = True
            assert mask.all()
    # A 1024x768 photo gets the fine level of 128 px tiles (faces of ~32 px); a 1080p one only
    # the coarse levels (P9's cost), and no tile is ever counted twice.
    assert {s for _, _, s in tiles(1024, 768)} == {512, 256, FINE_TILE}
    assert {s for _, _, s in tiles(1920, 1080)} == {960, 480}
    assert {s for _, _, s in tiles(1024, 768, fine_budget=0)} == {512, 256}
    assert len(set(tiles(512, 384))) == len(tiles(512, 384))
    assert {s for _, _, s in tiles(200, 150)} == {FINE_TILE}  # too small for a coarse level
    assert tiles(128, 100) == []  # searched whole


def test_the_verifier_tells_a_real_face_from_a_cat():
    from skimage import data

    verifier = FaceVerifier()
    astronaut = np.ascontiguousarray(data.astronaut())
    assert verifier.presence(astronaut, FaceBox(177, 82, 95, 95)) > 0.99
    cat = np.ascontiguousarray(data.chelsea())
    assert verifier.presence(cat, FaceBox(140, 30, 160, 160)) < MIN_PRESENCE
    assert verifier.presence(astronaut, FaceBox(300, 330, 180, 180)) < MIN_PRESENCE  # helmet


def test_litert_and_opencv_give_the_same_presence():
    from skimage import data

    astronaut = np.ascontiguousarray(data.astronaut())
    boxes = [FaceBox(177, 82, 95, 95), FaceBox(300, 330, 180, 180), FaceBox(150, 60, 140, 140)]
    lite, cv = FaceVerifier(backend="litert"), FaceVerifier(backend="opencv")
    for box in boxes:
        assert lite.presence(astronaut, box) == pytest.approx(cv.presence(astronaut, box), abs=1e-3)
    with pytest.raises(ValueError, match="backend"):
        FaceVerifier(backend="gpu")


def _cropper(boxes_per_frame, presence) -> tuple[FaceCropper, FakeVerifier]:
    class Frames:
        def __init__(self) -> None:
            self.i = -1

        def detect(self, image):
            self.i += 1
            return boxes_per_frame[self.i]

        def close(self):
            pass

    verifier = FakeVerifier(presence)
    return FaceCropper(detector=Frames(), verifier=verifier, min_confidence=0.5), verifier


def test_an_object_never_becomes_a_person_and_a_face_turning_away_keeps_its_track():
    image = np.zeros((240, 320, 3), np.uint8)
    lamp, face = FaceBox(10, 10, 60, 60, 0.9), FaceBox(200, 50, 60, 60, 0.9)
    frames = [[lamp, face]] * 13
    cropper, verifier = _cropper(frames, {10: 0.0, 200: 0.999})
    for i in range(12):
        cropper(image, i)
    by_x = {t.boxes[0].x: t for t in cropper.tracks}
    assert by_x[10].verified is False and not by_x[10].stable(2, 0.5)
    assert by_x[200].verified is True and by_x[200].stable(2, 0.5)
    # the face is checked once; the lamp on its 1st, 2nd, 4th and 8th frames only, each time on
    # its crop and its mirrored crop (`verify_box`, the photos' check)
    assert verifier.calls == 1 + 4 * 2
    # the face turns away: the verifier no longer passes it, the track goes on
    verifier.presence_of[200] = 0.0
    cropper(image, 12)
    assert by_x[200].length == 13 and by_x[200].stable(2, 0.5)


def test_a_face_seen_first_turned_away_is_verified_later():
    image = np.zeros((240, 320, 3), np.uint8)
    face = FaceBox(200, 50, 60, 60, 0.9)
    cropper, verifier = _cropper([[face]] * 4, {})
    cropper(image, 0)
    cropper(image, 1)
    assert cropper.tracks[0].verified is False
    verifier.presence_of[200] = 0.999  # the face turns to the camera
    cropper(image, 2)  # 3rd frame: not a check
    assert cropper.tracks[0].verified is False
    cropper(image, 3)  # 4th frame: checked
    assert cropper.tracks[0].verified is True


@pytest.fixture(scope="module")
def predictor_with_faces(tiny_model):
    from emoclip.inference.predictor import EmotionPredictor

    p = EmotionPredictor(tiny_model, batch_size=8)
    yield p
    p.close()


@pytest.fixture(scope="module")
def whole_frame_predictor(tiny_model):
    import copy
    import dataclasses

    from emoclip.inference.predictor import EmotionPredictor

    model = copy.deepcopy(tiny_model)
    pre = dataclasses.replace(model.config.preprocess, face_detection=False)
    model.config = dataclasses.replace(model.config, preprocess=pre)
    p = EmotionPredictor(model, batch_size=8)
    yield p
    p.close()


def test_no_face_says_so_and_names_the_whole_image_scope(predictor_with_faces, tmp_path):
    from skimage import data

    from emoclip.inference.photo import NO_FACE_WARNING

    pred = predictor_with_faces.predict_image(np.ascontiguousarray(data.coffee()))
    assert pred.tracks == [] and pred.scope == "whole image"
    assert NO_FACE_WARNING in pred.warnings
    out = pred.to_dict()
    assert out["scope"] == "whole image" and "timeline" not in out
    assert json.loads(pred.to_json())["warnings"] == pred.warnings


def test_a_found_face_is_the_answer_and_its_scope(predictor_with_faces):
    from skimage import data

    pred = predictor_with_faces.predict_image(np.ascontiguousarray(data.astronaut()))
    assert pred.scope == "face" and len(pred.tracks) == 1 and pred.tracks[0].primary
    assert not pred.warnings
    assert pred.probabilities == pytest.approx(pred.tracks[0].probabilities)


def test_a_whole_frame_model_says_no_face_search_ran(whole_frame_predictor):
    from skimage import data

    from emoclip.inference.photo import NO_FACE_WARNING, WHOLE_IMAGE_WARNING

    pred = whole_frame_predictor.predict_image(np.ascontiguousarray(data.astronaut()))
    assert pred.scope == "whole image"
    assert pred.warnings == [WHOLE_IMAGE_WARNING] and NO_FACE_WARNING not in pred.warnings


def test_the_cli_says_plainly_that_no_face_was_found(tiny_model, tmp_path, capsys):
    from PIL import Image
    from skimage import data

    from emoclip.cli import main
    from emoclip.weights.files import save_checkpoint

    weights = save_checkpoint(
        tiny_model.state_dict(), tiny_model.config, tmp_path / "t.safetensors"
    )
    path = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(path)
    assert (
        main(["predict", str(path), "--model", str(weights), "--json", str(tmp_path / "o.json")])
        == 0
    )
    err = capsys.readouterr().err
    assert "scope: whole image (no face was analysed)" in err
    assert "warning: no face was found in the image" in err
    result = json.loads((tmp_path / "o.json").read_text())  # one input: one object
    assert result["scope"] == "whole image" and "timeline" not in result


class AllChecks(FakeVerifier):
    """Presence, profile and ONet answers by box position; records each crop it is shown."""

    def __init__(self, presence: dict[float, float], profiles: set[float], onet: dict) -> None:
        super().__init__(presence)
        self.profiles, self.onet_of, self.crops = profiles, onet, []

    def presence(self, image: np.ndarray, box: FaceBox) -> float:
        from emoclip.faces.crops import crop_square
        from emoclip.faces.verify import VERIFY_MARGIN

        self.crops.append(crop_square(image, box, margin=VERIFY_MARGIN, size=64))
        return super().presence(image, box)

    def profile(self, image: np.ndarray, box: FaceBox) -> bool:
        return box.x in self.profiles

    def onet(self, image: np.ndarray, box: FaceBox) -> float:
        return self.onet_of.get(box.x, 0.0)


def test_the_mirrored_check_sees_the_crop_of_the_whole_mirrored_photo():
    from skimage import data

    from emoclip.faces.crops import crop_square
    from emoclip.faces.verify import VERIFY_MARGIN

    photo = np.ascontiguousarray(data.astronaut())  # 512 x 512
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    boxes = [
        FaceBox(177, 82, 95, 95, 0.9),  # the face, inside
        FaceBox(0.0, 3.5, 60.5, 41.0, 0.9),  # at the top-left corner
        FaceBox(470.25, 400.0, 41.75, 90.0, 0.9),  # at the right edge, tall
        FaceBox(100, 100, 400, 380, 0.9),  # most of the photo
    ]
    rng = np.random.default_rng(5)  # and boxes on half pixels, where crops round half to even
    for _ in range(60):
        w, h = rng.integers(20, 160, 2) + rng.integers(0, 2, 2) / 2
        x, y = rng.integers(0, 512 - 160, 2) + rng.integers(0, 2, 2) / 2
        boxes.append(FaceBox(float(x), float(y), float(w), float(h), 0.9))
    for box in boxes:
        verifier = AllChecks({}, set(), {})
        assert verify_box(verifier, photo, box) is None
        own, flipped = verifier.crops
        whole = FaceBox(512 - box.x - box.w, box.y, box.w, box.h, box.score)
        assert np.array_equal(own, crop_square(photo, box, margin=VERIFY_MARGIN, size=64))
        assert np.array_equal(flipped, crop_square(mirrored, whole, margin=VERIFY_MARGIN, size=64))


def test_photos_and_video_tracks_pass_the_same_boxes():
    """The photo search and a video's tracks verify with one check (`verify_box`): presence,
    the mirrored crop, the profile cascade and MTCNN's ONet, each within its score range."""
    image = np.zeros((400, 1200, 3), np.uint8)
    s_profile, s_onet = max(PROFILE_SCORE, 0.5), max(ONET_SCORE, PROFILE_SCORE)
    boxes = [
        FaceBox(10, 10, 90, 90, 0.9),  # presence passes
        FaceBox(150, 10, 90, 90, s_profile),  # doubted; the profile cascade sees a face
        FaceBox(300, 10, 90, 90, s_onet),  # doubted; ONet is sure
        FaceBox(450, 10, 90, 90, s_onet),  # doubted; ONet is not sure
        FaceBox(600, 10, 90, 90, ONET_SCORE - 0.02),  # ONet sure, the detector not enough
        FaceBox(750, 10, 90, 90, s_profile),  # profile seen, presence too low
        FaceBox(900, 10, 90, 90, 0.9),  # nothing passes
    ]
    presence = {10: 0.999, 150: PROFILE_PRESENCE, 300: 0.0, 450: 0.0, 600: 0.0, 750: 0.0}
    onet = {300: ONET_MIN, 450: ONET_MIN - 0.05, 600: 1.0}
    verifier = AllChecks(presence, {150, 750}, onet)
    photo = {b.x for b in find_faces(FakeDetector(boxes), verifier, image)}
    assert photo == {10, 150, 300}

    class Frames:
        def detect(self, image):
            return list(boxes)

        def close(self):
            pass

    cropper = FaceCropper(
        detector=Frames(), verifier=verifier, min_confidence=0.5, max_faces=len(boxes)
    )
    cropper(image, 0)
    video = {t.boxes[0].x for t in cropper.tracks if t.verified}
    assert video == photo
