"""BlazeFace run directly by LiteRT (`emoclip.faces.blazeface`) agrees with MediaPipe's own
``detect`` on the same model: same anchors, same decoding, same scores; the photo search finds the
same faces with it."""

from __future__ import annotations

import numpy as np
import pytest

from emoclip.faces import FaceDetector, merge_duplicates
from emoclip.faces.blazeface import BlazeFace, anchors, decode, weighted_nms
from emoclip.testing.faces_eval import eval_set


def _crops(count: int, side: int, seed: int = 0) -> list[np.ndarray]:
    """Random ``side``-px squares of the calibration part's group photos (real faces at many
    sizes, real scenes)."""
    rng = np.random.default_rng(seed)
    out = []
    for e in eval_set("calibration", kinds=("faces",)):
        height, width = e.image.shape[:2]
        for _ in range(4):
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            out.append(np.ascontiguousarray(e.image[y : y + side, x : x + side]))
        if len(out) >= count:
            return out
    return out


def test_the_anchors_are_mediapipes_896():
    a = anchors()
    assert a.shape == (896, 2)
    # 16x16 cells of stride 8 with 2 anchors each, then 8x8 cells of stride 16 with 6 each.
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(a[512], [0.5 / 8, 0.5 / 8]) and np.allclose(a[517], a[512])
    assert np.allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_decoding_a_known_regression():
    logits = np.full(896, -10.0)
    regs = np.zeros((896, 16))
    logits[512] = 2.0  # the first stride-16 anchor, centred at (8, 8) px of the input
    regs[512, :4] = [4.0, -2.0, 32.0, 16.0]  # centre moved by (4, -2) px, 32 x 16 px
    regs[512, 4:6] = [1.0, 1.0]  # right eye one px right and down of the anchor
    (score, coords), *rest = decode(logits, regs, 0.5)
    assert not rest and score == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert coords[:4] * 128 == pytest.approx([-4.0, -2.0, 28.0, 14.0])
    assert coords[4:6] * 128 == pytest.approx([9.0, 9.0])


def test_weighted_suppression_averages_a_group_by_score():
    a = np.array([0.0, 0.0, 0.5, 0.5] + [0.0] * 12)
    b = np.array([0.1, 0.0, 0.6, 0.5] + [0.0] * 12)
    far = np.array([0.8, 0.8, 0.9, 0.9] + [0.0] * 12)
    out = weighted_nms([(0.9, a), (0.3, b), (0.6, far)])
    assert [s for s, _ in out] == [0.9, 0.6]
    assert out[0][1][0] == pytest.approx((0.9 * 0.0 + 0.3 * 0.1) / 1.2)


@pytest.mark.slow
def test_scores_and_boxes_match_mediapipe_at_the_models_size():
    """At 128 px no resampling differs: the same faces, the same scores, boxes within MediaPipe's
    whole-pixel rounding (it truncates to ints and does not clip the box to the image)."""
    crops = _crops(120, 128)
    mine = BlazeFace(0.3).detect_many(crops)
    matched = 0
    with FaceDetector(0.3) as reference:
        for crop, dets in zip(crops, mine):
            theirs = reference.detect(crop)  # after `merge_duplicates`, so ours too
            boxes = merge_duplicates([d.box for d in dets])
            assert len(theirs) == len(boxes)
            for t in theirs:
                b = max(boxes, key=lambda b: b.iou(t))
                assert b.score == pytest.approx(t.score, abs=1e-4)
                assert abs(b.x - t.x) <= 1.5 and abs(b.y - t.y) <= 1.5
                matched += 1
    assert matched >= 20  # the crops hold faces


@pytest.mark.slow
def test_larger_inputs_agree_with_mediapipe_up_to_resampling():
    """Larger tiles are shrunk to 128 px (here with area averaging, MediaPipe bilinear): the same
    faces are found with close boxes and scores."""
    crops = _crops(60, 384, seed=1)
    mine = BlazeFace(0.5).detect_many(crops)
    ious, diffs, missed = [], [], 0
    with FaceDetector(0.5) as reference:
        for crop, dets in zip(crops, mine):
            for t in reference.detect(crop):
                best = max(dets, key=lambda d: d.box.iou(t), default=None)
                if best is None or best.box.iou(t) < 0.5:
                    missed += t.score > 0.6  # near the threshold resampling may tip either way
                    continue
                ious.append(best.box.iou(t))
                diffs.append(abs(best.box.score - t.score))
    assert len(ious) >= 20 and missed <= 1
    assert np.median(ious) >= 0.85 and np.median(diffs) <= 0.03


def test_keypoints_lie_in_the_face():
    crops = _crops(40, 128, seed=2)
    found = [d for dets in BlazeFace(0.7).detect_many(crops) for d in dets]
    assert found
    for d in found:
        b = d.box
        eyes, mouth = d.keypoints[:2], d.keypoints[3]
        assert np.all(eyes[:, 0] >= b.x - 2) and np.all(eyes[:, 0] <= b.x + b.w + 2)
        assert eyes[:, 1].mean() < mouth[1]  # eyes above the mouth (upright faces)


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="RGB image"):
        BlazeFace().detect(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="min_confidence"):
        BlazeFace(1.5)
