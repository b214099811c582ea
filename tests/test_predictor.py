"""EmotionPredictor end to end on generated videos with the tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import emoclip
from emoclip.inference.encoding import NoFaceError
from emoclip.inference.predictor import EmotionPredictor
from emoclip.inference.timeline import window_spans
from emoclip.media import VideoDecodeError
from emoclip.media.inputs import VideoLimits
from emoclip.media.probe import LimitError
from emoclip.settings import AnalysisSettings
from emoclip.testing.media import blank_frames, moving_face_frames, write_video


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = EmotionPredictor(tiny_model, batch_size=8)
    yield p
    p.close()


@pytest.fixture(scope="module")
def two_face_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "two.webm"
    return write_video(path, moving_face_frames(48, size=(480, 640), faces=2), fps=12)


def test_prediction_contents(predictor, two_face_video):
    classes = emoclip.preset("dfew-7")
    pred = predictor.predict(two_face_video, classes)
    assert pred.classes == classes.names
    assert abs(sum(pred.probabilities.values()) - 1) < 1e-5 and pred.top in classes.names
    assert pred.timeline.probabilities.shape[1] == 7 and len(pred.timeline) >= 2
    assert np.allclose(pred.timeline.probabilities.sum(1), 1, atol=1e-5)
    assert np.all(np.diff(pred.timeline.starts) > 0)
    assert abs(np.linalg.norm(pred.embedding) - 1) < 1e-5
    assert pred.faces.frames_without_face == 0 and pred.faces.sampled_frames == 16
    assert len(pred.tracks) == 2 and sum(t.primary for t in pred.tracks) == 1
    for stage in ("decode", "detect", "encode", "temporal", "text", "score", "total"):
        assert stage in pred.timings


def test_clip_embedding_is_the_temporal_model_on_the_subject_frames(predictor, two_face_video):
    enc = predictor.encode(two_face_video)
    T = predictor.parts.config.num_frames
    idx = emoclip.media.sample_indices(len(enc.frame_embeddings), T)
    expected = predictor.model.aggregate(enc.frame_embeddings[idx][None])[0]
    assert torch.allclose(enc.clip_embedding, expected, atol=1e-5)


def test_rescoring_reuses_the_encoding_and_only_new_texts(predictor, two_face_video, monkeypatch):
    classes = emoclip.preset("dfew-7")
    predictor.predict(two_face_video, classes)
    calls = []
    monkeypatch.setattr(
        predictor.parts.encoder, "encode", lambda crops, **kw: calls.append(len(crops))
    )
    before = predictor.parts.text_cache.encoded
    edited = classes.with_class("anger", ["A face with a furious scowl and clenched jaw"])
    pred = predictor.predict(two_face_video, edited)
    assert calls == []  # no frame re-encoded
    assert predictor.parts.text_cache.encoded - before == 1  # only the edited description
    assert pred.probabilities != predictor.predict(two_face_video, classes).probabilities


def test_each_sampled_frame_is_encoded_once_however_many_windows(tiny_model, tmp_path):
    path = write_video(tmp_path / "long.webm", moving_face_frames(120, size=(240, 320)), fps=12)
    p = EmotionPredictor(tiny_model, batch_size=8)
    encoded = []
    real = p.parts.encoder.encode
    p.parts.encoder.encode = lambda crops, **kw: (encoded.append(len(crops)), real(crops, **kw))[1]
    pred = p.predict(path, emoclip.preset("dfew-7"))
    p.close()
    assert len(pred.timeline) >= 8  # 10 s, 2 s windows every 1 s
    assert sum(encoded) == pred.faces.sampled_frames  # one face per frame, encoded once


def test_compound_scores_with_compound_embedding(predictor, two_face_video):
    classes = emoclip.preset("dfew-7").with_compound("happily surprised", ["happiness", "surprise"])
    pred = predictor.predict(two_face_video, classes)
    assert pred.classes[-1] == "happily surprised" and len(pred.probabilities) == 8
    table = predictor.class_embeddings(classes)
    expected = torch.nn.functional.normalize(table[0] + table[4], dim=-1)  # happiness + surprise
    assert torch.allclose(table[-1], expected, atol=1e-5)


def test_no_face_fallbacks(tiny_model, tmp_path):
    path = write_video(tmp_path / "blank.webm", blank_frames(16, (120, 160)), fps=8)
    centre = EmotionPredictor(tiny_model).predict(path, emoclip.preset("dfew-7"))
    assert (
        centre.faces.frames_with_face == 0
        and centre.faces.frames_without_face == centre.faces.sampled_frames
    )
    assert any("no face" in w for w in centre.warnings)
    with pytest.raises(NoFaceError, match="no face"):
        EmotionPredictor(tiny_model, face_fallback="skip").predict(path, emoclip.preset("dfew-7"))
    with pytest.raises(ValueError, match="fallback"):
        EmotionPredictor(tiny_model, face_fallback="blur")


def test_frames_array_input(predictor):
    frames = np.stack(list(moving_face_frames(8, size=(240, 320))))
    pred = predictor.predict(frames, emoclip.preset("dfew-7"), fps=4)
    assert pred.faces.sampled_frames == 8 and pred.video["name"] == "frames"
    with pytest.raises(VideoDecodeError):
        predictor.predict(np.zeros((0, 10, 10, 3), np.uint8))


def test_bad_videos_raise_typed_errors(predictor, tmp_path):
    with pytest.raises(VideoDecodeError):
        predictor.predict(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoDecodeError):
        predictor.predict(junk)
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError):
        predictor.predict(empty)


def test_limits_checked_before_decoding(tiny_model, two_face_video):
    with pytest.raises(LimitError, match="MB"):
        EmotionPredictor(tiny_model, limits=VideoLimits(max_bytes=100)).predict(two_face_video)
    with pytest.raises(LimitError, match="megapixels"):
        EmotionPredictor(tiny_model, limits=VideoLimits(max_pixels=1000)).predict(two_face_video)
    with pytest.raises(LimitError, match="lasts"):
        EmotionPredictor(tiny_model, limits=VideoLimits(max_duration=1)).predict(two_face_video)


def test_exports(predictor, two_face_video, tmp_path):
    pred = predictor.predict(two_face_video, emoclip.preset("dfew-7"))
    data = json.loads(pred.to_json(tmp_path / "p.json"))
    assert data["top"] == pred.top and len(data["embedding"]) == 32
    assert len(data["timeline"]) == len(pred.timeline)
    lines = pred.to_csv(tmp_path / "p.csv").strip().splitlines()
    assert lines[0] == "video,scope,track,start,end,class,probability,box,evidence"
    e = pred.evidence
    assert e is not None
    evidence_rows = 1 + len(e.key_moments) + (e.against is not None) + len(e.words)
    assert len(lines) - 1 == 7 * (1 + len(pred.timeline) + len(pred.tracks)) + evidence_rows


def test_window_spans():
    assert window_spans(1.5, 4, 1) == [(0.0, 1.5)]
    spans = window_spans(10, 4, 1)
    assert spans[0] == (0.0, 4.0) and spans[-1] == (6.0, 10.0) and len(spans) == 7
    assert window_spans(10.8, 4, 1)[-1] == pytest.approx((6.8, 10.8))


def test_face_interpolation_halves_detection_and_keeps_the_results(
    tiny_model, tmp_path, monkeypatch
):
    path = write_video(tmp_path / "one.webm", moving_face_frames(60, size=(240, 320)), fps=12)
    results = {}
    for interpolate in (False, True):
        p = EmotionPredictor(tiny_model, batch_size=8, interpolate_faces=interpolate)
        calls = []
        real = p.parts.faces.get().detect
        monkeypatch.setattr(
            p.parts.faces.get(),
            "detect",
            lambda image, real=real, calls=calls: calls.append(1) or real(image),
        )
        enc = p.encode(path)
        results[interpolate] = (enc, len(calls))
        p.close()
    (plain, plain_calls), (interp, interp_calls) = results[False], results[True]
    assert plain.video["faces_interpolated"] == 0 and plain_calls == len(plain.times)
    assert (
        interp.video["faces_interpolated"] >= len(interp.times) // 2 - 2
    )  # a steady face: nearly every other frame
    assert interp_calls == len(interp.times) - interp.video["faces_interpolated"]
    assert (
        np.array_equal(plain.times, interp.times) and len(plain.tracks) == len(interp.tracks) == 1
    )
    cos = torch.nn.functional.cosine_similarity(plain.frame_embeddings, interp.frame_embeddings)
    assert float(cos.min()) > 0.95


def test_env_switches_face_interpolation_off(tiny_model):
    off = AnalysisSettings.from_env({"EMOCLIP_INTERPOLATE_FACES": "0"})
    assert not EmotionPredictor(tiny_model, off).settings.interpolate_faces
    blank = AnalysisSettings.from_env({"EMOCLIP_INTERPOLATE_FACES": ""})
    assert EmotionPredictor(tiny_model, blank).settings.interpolate_faces


def test_batched_pooling_matches_one_sequence_at_a_time(predictor, two_face_video):
    enc = predictor.encode(two_face_video)
    frames = torch.randn(40, enc.frame_embeddings.shape[1])
    picks = np.random.default_rng(0).integers(
        0, 40, (37, predictor.parts.config.num_frames)
    )  # > 2 chunks
    batched = predictor.parts.pooler.pool_batch(
        [(frames, picks[:30]), (frames[:20], picks[30:] % 20)]
    )
    expected = [predictor.parts.pooler.pool(frames[p]) for p in picks[:30]] + [
        predictor.parts.pooler.pool(frames[:20][p % 20]) for p in picks[30:]
    ]
    assert torch.allclose(batched, torch.stack(expected), atol=1e-5)
    ((_, frames, _, _, primary_embedding, _),) = [t for t in enc.tracks if t[5]]
    if frames == len(enc.frame_embeddings):  # the subject's track is the clip: pooled once, shared
        assert torch.equal(primary_embedding, enc.clip_embedding)
    for (s, e), w in zip(zip(enc.window_starts, enc.window_ends), enc.window_embeddings):
        idx = np.flatnonzero((enc.frame_times >= s - 1e-6) & (enc.frame_times < e - 1e-6))
        pick = idx[emoclip.media.sample_indices(len(idx), predictor.parts.config.num_frames)]
        assert torch.allclose(w, predictor.parts.pooler.pool(enc.frame_embeddings[pick]), atol=1e-5)


def test_early_and_tail_batches(tiny_model, tmp_path):
    """The encoder starts before a full batch is ready and folds a small remainder into the batch
    before; an early (starved) batch leaves a core to decode/detect (of 2 workers, it uses 1); with or
    without the decode thread the embeddings are the same."""
    path = write_video(tmp_path / "b.webm", moving_face_frames(150, size=(240, 320)), fps=15)
    out = {}
    for prefetch in (False, True):
        p = EmotionPredictor(tiny_model, batch_size=16, prefetch=prefetch, encode_workers=2)
        sizes, used = [], []
        real = p.parts.encoder.encode

        def recording(crops, real=real, sizes=sizes, used=used, **kw):
            sizes.append(len(crops))
            used.append(kw.get("workers"))
            return real(crops, **kw)

        p.parts.encoder.encode = recording
        out[prefetch] = (p.encode(path), sizes, used)
        p.close()
    (seq, seq_sizes, seq_workers), (pre, pre_sizes, pre_workers) = out[False], out[True]
    assert sum(seq_sizes) == sum(pre_sizes) == len(seq.times)
    assert seq_sizes[:-1] == [16] * (len(seq_sizes) - 1)  # without the thread: full batches
    assert set(seq_workers) == {None}  # ... on every worker
    assert max(pre_sizes) <= 16 + 8 and min(pre_sizes[:-1], default=8) >= 8
    for size, w in zip(pre_sizes[:-1], pre_workers):
        assert w == (None if size >= 16 else 1), (pre_sizes, pre_workers)
    assert 1 in pre_workers  # the tiny encoder outruns decode/detect: it starts starved
    assert torch.allclose(seq.frame_embeddings, pre.frame_embeddings, atol=1e-5)
    assert torch.allclose(seq.window_embeddings, pre.window_embeddings, atol=1e-5)


def test_score_takes_bare_embeddings_by_the_same_formula(predictor, two_face_video):
    classes = emoclip.preset("dfew-7")
    pred = predictor.predict(two_face_video, classes)
    one = predictor.score(pred.embedding, classes)
    assert one.shape == (7,) and np.allclose(
        one, [pred.probabilities[n] for n in classes.names], atol=1e-6
    )
    enc = predictor.encode(two_face_video)
    many = predictor.score(enc.window_embeddings, classes)
    assert many.shape == pred.timeline.probabilities.shape
    assert np.allclose(many, pred.timeline.probabilities, atol=1e-6)
    for bad in (np.zeros((2, 3)), np.zeros((1, 2, predictor.model.embed_dim))):
        with pytest.raises(ValueError, match="embeddings must be"):
            predictor.score(bad, classes)


# The user's API: exactly these members (issue #19); what benchmarks and tests need beyond them
# lives on `predictor.parts`.
PUBLIC_MEMBERS = {
    "model",
    "settings",
    "parts",
    "predict",
    "predict_image",
    "encode",
    "score",
    "class_embeddings",
    "default_classes",
    "close",
}


def test_the_predictor_keeps_the_users_api_and_no_more(predictor, repo_root):
    """Every public name of a built predictor (class attributes, properties, methods and the
    attributes `__init__` sets) is one of the ten; the architecture page and the README's Python
    API section name each of them."""
    on_class = {n for n in dir(EmotionPredictor) if not n.startswith("_")}
    on_instance = {n for n in dir(predictor) if not n.startswith("_")}
    assert on_class <= on_instance
    assert on_instance == PUBLIC_MEMBERS, (
        f"new public members: {sorted(on_instance - PUBLIC_MEMBERS)} (put them on "
        f"`parts` or make them private); missing: {sorted(PUBLIC_MEMBERS - on_instance)}"
    )
    parts = predictor.parts
    assert {"encoder", "pooler", "faces", "text_cache", "config", "settings"} <= set(vars(parts))
    assert parts.settings is predictor.settings and parts.encoder.precision == "fp32"
    arch = (repo_root / "docs" / "architecture.md").read_text(encoding="utf-8")
    line = next(ln for ln in arch.split("\n- ") if ln.startswith("`predictor.py`"))
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    api = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    for name in PUBLIC_MEMBERS:
        assert f"`{name}`" in line, f"docs/architecture.md does not name {name}"
        assert f"`{name}`" in api, f"README's Python API does not name {name}"


def test_predictors_of_one_model_share_class_text_embeddings(predictor, tiny_model):
    import copy

    classes = emoclip.preset("dfew-7")
    predictor.class_embeddings(classes)
    sibling = EmotionPredictor(tiny_model, text_cache=predictor.parts.text_cache)
    before = sibling.parts.text_cache.encoded
    assert torch.equal(sibling.class_embeddings(classes), predictor.class_embeddings(classes))
    assert sibling.parts.text_cache.encoded == before  # nothing encoded again
    with pytest.raises(ValueError, match="another model"):
        EmotionPredictor(copy.deepcopy(tiny_model), text_cache=predictor.parts.text_cache)
