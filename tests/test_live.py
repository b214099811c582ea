"""emoclip.live.LiveWindow: a stream's last T frame embeddings scored as one window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoclip.classes import ClassSet
from emoclip.inference.predictor import EmotionPredictor
from emoclip.live import LiveWindow
from emoclip.testing.media import blank_frames, moving_face_frames


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = EmotionPredictor(tiny_model, batch_size=8)
    yield p
    p.close()


def test_the_window_keeps_the_last_t_frames_and_scores_them(predictor):
    T = predictor.parts.config.num_frames
    frames = list(moving_face_frames(T + 3, size=(240, 320)))
    window = LiveWindow(T)
    assert window.probabilities(predictor) is None and window.embedding(predictor) is None
    for frame in frames:
        found, added = window.add_frame(predictor, frame)
        assert found and added
    assert len(window) == T and window.frames == T + 3 and window.faces == T + 3
    probs = window.probabilities(predictor)
    names = predictor.default_classes().names
    assert probs.shape == (len(names),) and probs.dtype == np.float32
    assert abs(float(probs.sum()) - 1) < 1e-5
    # the oldest three frames were dropped: a window fed only the last T frames agrees
    fresh = LiveWindow(T)
    for frame in frames[3:]:
        fresh.add_frame(predictor, frame)
    np.testing.assert_allclose(
        window.probabilities(predictor), fresh.probabilities(predictor), atol=1e-5
    )
    # and it differs from a window that still holds the first frames
    early = LiveWindow(T)
    for frame in frames[:T]:
        early.add_frame(predictor, frame)
    assert not torch.allclose(early.embedding(predictor), window.embedding(predictor), atol=1e-6)


def test_the_window_scores_any_class_set_in_its_name_order(predictor):
    classes = ClassSet.parse(
        "classes:\n  joy: a broad smile\n  calm: a relaxed face\n"
        "compounds:\n  content: [joy, calm]\n"
    )
    window = LiveWindow(4)
    for frame in moving_face_frames(2, size=(240, 320)):
        window.add_frame(predictor, frame)
    probs = window.probabilities(predictor, classes)
    assert probs.shape == (3,) and abs(float(probs.sum()) - 1) < 1e-5
    expected = predictor.score(window.embedding(predictor).numpy(), classes)
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_frames_without_a_face_follow_the_predictors_fallback(tiny_model):
    frame = next(blank_frames(1, (240, 320)))
    skip = EmotionPredictor(tiny_model, face_fallback="skip")
    center = EmotionPredictor(tiny_model, face_fallback="center")
    try:
        window = LiveWindow(3)
        assert window.add_frame(skip, frame) == (False, False)
        assert len(window) == 0 and window.frames == 1 and window.faces == 0
        assert window.add_frame(center, frame) == (False, True) and len(window) == 1
        window.clear()
        assert len(window) == 0 and window.frames == 0
    finally:
        skip.close()
        center.close()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        LiveWindow(0)
    with pytest.raises(ValueError, match=r"\(D,\)"):
        LiveWindow(2).add(torch.zeros(2, 8))
