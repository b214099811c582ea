"""MTCNN's ONet in numpy (`emoclip.faces.mtcnn_check`): the shipped weights load without
running code, and the port knows a face: on the real photographs of the face evaluation set's
sources, the recorded face crop scores high and crops of the same photo's background low."""

from __future__ import annotations

import numpy as np
import pytest

from emoclip.faces import FaceBox
from emoclip.faces.mtcnn_check import MTCNNCheck, default_mtcnn_model, face_probability
from emoclip.testing.faces_eval import FACE_SOURCES, face_source


def _background(image: np.ndarray, face: tuple[float, float, float, float]) -> list[FaceBox]:
    """Four boxes of the face's size in the photo's corners and edges, away from the face."""
    height, width = image.shape[:2]
    _, _, w, h = face
    return [
        FaceBox(5, 5, w, h),
        FaceBox(width - w - 5, height - h - 5, w, h),
        FaceBox(width / 2 - w / 2, height - h - 5, w, h),
        FaceBox(5, height / 2, w, h),
    ]


@pytest.mark.parametrize("name", sorted(FACE_SOURCES))
def test_the_face_scores_high_and_the_background_low(name):
    image, face = face_source(name), FACE_SOURCES[name]
    check = MTCNNCheck("onet")
    p = check.probabilities(image, [FaceBox(*face), *_background(image, face)])
    assert p[0] >= 0.95, (name, p)  # the cameraman, in profile, too
    assert p[1:].max() <= 0.2, (name, p)


def test_onet_passes_the_faces_and_not_a_cat_nor_plain_grey():
    from skimage import data

    check = MTCNNCheck("onet")
    assert check.probability(face_source("camera"), FaceBox(*FACE_SOURCES["camera"])) >= 0.95
    assert check.probability(data.chelsea(), FaceBox(140, 40, 200, 200)) < 0.5
    assert check.probability(np.full((300, 300, 3), 128, np.uint8), FaceBox(100, 100, 99, 99)) < 0.5


def test_probabilities_are_a_softmax_share_per_crop():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    boxes = [FaceBox(10, 10, 60, 60), FaceBox(150, 50, 90, 90), FaceBox(-20, -20, 80, 80)]
    p = MTCNNCheck("onet").probabilities(image, boxes)
    assert p.shape == (3,) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))
    assert MTCNNCheck("onet").probabilities(image, []).shape == (0,)


def test_the_weights_are_safetensors_shipped_with_their_licence():
    from safetensors.numpy import load_file

    path = default_mtcnn_model()
    assert path.suffix == ".safetensors" and path.is_file()
    weights = load_file(str(path))
    assert weights["dense5.weight"].shape == (256, 1152)
    assert all(v.dtype == np.float32 for v in weights.values())
    assert "MIT License" in (path.parent / "LICENSE-facenet-pytorch.txt").read_text()


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="net must be"):
        MTCNNCheck("pnet")
    with pytest.raises(ValueError, match="RNet's weights are not shipped"):
        MTCNNCheck("rnet")
    with pytest.raises(ValueError, match=r"\(N, 48, 48, 3\)"):
        face_probability({}, "onet", np.zeros((1, 24, 24, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="MTCNN weights not found"):
        MTCNNCheck("onet", path="/nonexistent/onet.safetensors")
