"""Image-tower precision choice and the inference fast paths (same function, less work)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import emoclip
import emoclip.inference.precision as precision_mod
from emoclip.inference.fast_paths import FastImageTower, FastTemporal
from emoclip.inference.predictor import EmotionPredictor
from emoclip.settings import AnalysisSettings
from emoclip.testing.media import moving_face_frames, write_video


def _fresh_model():
    """A model of its own: the precision decision is cached per model object."""
    torch.manual_seed(0)
    return emoclip.load_model("test-emoclip-tiny")


def _crops(model, n=6, seed=0):
    s = model.image_size
    return np.random.default_rng(seed).integers(0, 256, (n, s, s, 3), dtype=np.uint8)


def test_bf16_embeddings_stay_close_to_fp32():
    model = _fresh_model()
    fp32 = EmotionPredictor(model, precision="fp32")
    bf16 = EmotionPredictor(model, precision="bf16")
    crops = _crops(model)
    a, b = fp32.encoder.encode(crops), bf16.encoder.encode(crops)
    assert bf16.precision == "bf16" and fp32.precision == "fp32"
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert F.cosine_similarity(a, b, dim=-1).min() >= 0.99
    info = bf16.encoder.precision_info()
    assert (
        info["requested"] == "bf16"
        and info["cosine"] >= precision_mod.BF16_MIN_COSINE
        and info["implementation"]
    )
    assert info["reason"].startswith(
        "requested, cosine"
    )  # the start-up check ran for an explicit bf16 too
    with torch.inference_mode():  # fp32 is the model's own tower
        expected = model.encode_image(
            emoclip.model.preprocess.to_tensor(crops, model.config.preprocess)
        )
    assert torch.allclose(a, expected, atol=1e-6)


def test_auto_keeps_small_towers_in_fp32(tiny_model):
    p = EmotionPredictor(tiny_model)
    assert p.settings.precision == "auto" and p.precision == "fp32"


def test_auto_picks_bf16_when_the_check_passes(monkeypatch):
    monkeypatch.setattr(precision_mod, "AUTO_BF16_MIN_GFLOPS", 0.0)
    monkeypatch.setattr(precision_mod, "native_bf16", lambda: True)
    p = EmotionPredictor(_fresh_model(), precision="auto")
    assert p.precision == "bf16"
    assert p.encoder.precision_info()["cosine"] >= precision_mod.BF16_MIN_COSINE


def test_auto_falls_back_to_fp32_when_the_check_fails(monkeypatch):
    monkeypatch.setattr(precision_mod, "AUTO_BF16_MIN_GFLOPS", 0.0)
    monkeypatch.setattr(precision_mod, "native_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "bf16_cosine", lambda model, fn: 0.9)
    p = EmotionPredictor(_fresh_model(), precision="auto")
    assert p.precision == "fp32"
    assert "0.9" in p.encoder.precision_info()["reason"]


def _broken_bf16_tower(model):
    """A bf16 "tower" that computes the wrong function: the real start-up check must catch it."""
    gen = torch.Generator().manual_seed(1)
    return (lambda x: torch.randn(len(x), model.embed_dim, generator=gen)), "broken-for-test"


def test_explicit_bf16_runs_the_same_check_and_refuses_with_the_reason(monkeypatch):
    monkeypatch.setattr(precision_mod, "AUTO_BF16_MIN_GFLOPS", 0.0)
    monkeypatch.setattr(precision_mod, "native_bf16", lambda: True)
    monkeypatch.setattr(precision_mod, "bf16_tower", _broken_bf16_tower)
    checks = []
    real_check = precision_mod.bf16_cosine
    monkeypatch.setattr(
        precision_mod, "bf16_cosine", lambda model, fn: checks.append(1) or real_check(model, fn)
    )
    model = _fresh_model()
    auto = EmotionPredictor(model, precision="auto")
    assert (
        auto.precision == "fp32"
        and auto.encoder.precision_info()["cosine"] < precision_mod.BF16_MIN_COSINE
    )
    bf16 = EmotionPredictor(model, precision="bf16")
    with pytest.raises(
        RuntimeError, match=r"'bf16' refused: bf16 embeddings reached cosine -?0\.\d+ < 0\.999"
    ) as err:
        _ = bf16.precision
    # the same check, the same figure
    assert f"{auto.encoder.precision_info()['cosine']:.5f}" in str(err.value)
    assert len(checks) == 2  # one check for "auto", one for "bf16"
    with pytest.raises(RuntimeError, match="refused"):  # no frame is encoded in a refused precision
        bf16.encoder.encode(_crops(model))
    with pytest.raises(RuntimeError, match="refused"):  # nor a video decoded
        bf16.predict(np.zeros((4, 64, 64, 3), dtype=np.uint8))
    assert len(checks) == 2  # the refusal is cached with the model, like a tower
    assert EmotionPredictor(model, precision="fp32").encoder.encode(_crops(model)).shape[0] == 6


def test_explicit_bf16_refusal_from_the_cosine_alone(monkeypatch):
    monkeypatch.setattr(precision_mod, "bf16_cosine", lambda model, fn: 0.95)
    with pytest.raises(RuntimeError, match="cosine 0.95000 < 0.999"):
        _ = EmotionPredictor(_fresh_model(), precision="bf16").precision


def test_auto_without_native_bf16_is_fp32(monkeypatch):
    monkeypatch.setattr(precision_mod, "AUTO_BF16_MIN_GFLOPS", 0.0)
    monkeypatch.setattr(precision_mod, "native_bf16", lambda: False)
    assert EmotionPredictor(_fresh_model()).precision == "fp32"


def test_precision_setting_and_validation():
    model = _fresh_model()
    from_env = AnalysisSettings.from_env({"EMOCLIP_PRECISION": "BF16"})
    assert EmotionPredictor(model, from_env).precision == "bf16"
    assert EmotionPredictor(model, from_env, precision="fp32").precision == "fp32"  # a flag wins
    with pytest.raises(ValueError, match="precision"):
        EmotionPredictor(model, precision="fp16")


def test_edited_weights_rebuild_the_bf16_tower():
    model = _fresh_model()
    p = EmotionPredictor(model, precision="bf16")
    crops = _crops(model)
    before = p.encoder.encode(crops)
    with torch.no_grad():
        model.backbone.visual.proj.mul_(2.0)
    after = p.encoder.encode(crops)
    assert torch.allclose(after, 2 * before, rtol=0.02, atol=1e-3)


def test_precision_is_reported_and_prefetch_changes_nothing(tmp_path):
    model = _fresh_model()
    path = write_video(tmp_path / "c.webm", moving_face_frames(24, size=(240, 320)), fps=12)
    with_thread = EmotionPredictor(model, prefetch=True)
    serial = EmotionPredictor(model, prefetch=False)
    a, b = with_thread.predict(path), serial.predict(path)
    with_thread.close(), serial.close()
    assert a.video["precision"] == "fp32" == b.video["precision"]
    assert np.allclose(a.timeline.probabilities, b.timeline.probabilities, atol=1e-6)
    assert a.faces.sampled_frames == b.faces.sampled_frames and np.allclose(
        a.embedding, b.embedding, atol=1e-6
    )


def test_prefetch_thread_stops_when_the_consumer_fails(tmp_path, monkeypatch):
    model = _fresh_model()
    path = write_video(tmp_path / "c.webm", moving_face_frames(48, size=(240, 320)), fps=12)
    p = EmotionPredictor(model, batch_size=2, prefetch=True)

    def boom(crops, **kw):
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(p.encoder, "encode", boom)
    with pytest.raises(RuntimeError, match="encoder failed"):
        p.predict(path)
    p.close()
    import threading

    assert not [t for t in threading.enumerate() if t.name == "emoclip-decode"]


def test_fast_image_tower_matches_open_clip(tiny_model):
    visual = tiny_model.backbone.visual
    s = tiny_model.image_size
    x = torch.randn(3, 3, s, s)
    with torch.inference_mode():
        fast = FastImageTower.build(visual, torch.float32)
        if fast is None:
            pytest.skip("oneDNN fused linear ops are not available in this torch build")
        assert torch.allclose(fast(x), visual(x), atol=1e-5)


def test_fast_temporal_matches_the_temporal_transformer(tiny_model):
    x = torch.randn(3, tiny_model.config.preprocess.num_frames, tiny_model.embed_dim)
    with torch.inference_mode():
        assert torch.allclose(
            FastTemporal(tiny_model.temporal)(x), tiny_model.temporal(x), atol=1e-5
        )
        assert torch.allclose(
            FastTemporal(tiny_model.temporal)(x[:, :3]), tiny_model.temporal(x[:, :3]), atol=1e-5
        )


def test_text_without_padding_matches_the_full_context(tiny_model):
    tokens = emoclip.tokenize(
        ["a smiling face", "a frown with furrowed brows and tightly pressed lips"]
    )
    with torch.inference_mode():
        trimmed = tiny_model.encode_text(tokens)
        full = tiny_model.backbone.encode_text(tokens, normalize=True)
    assert torch.allclose(trimmed, full, atol=1e-5)


def test_data_parallel_encoding_matches_one_batch(tiny_model):
    crops = _crops(tiny_model, n=23)
    whole = EmotionPredictor(tiny_model, encode_workers=1).encoder.encode(crops)
    split = EmotionPredictor(tiny_model, encode_workers=3).encoder.encode(crops)
    assert split.shape == whole.shape and torch.allclose(split, whole, atol=1e-5)
    threads = torch.get_num_threads()
    alone = EmotionPredictor(tiny_model, encode_workers=3).encoder.encode(crops, workers=1)
    assert torch.allclose(alone, whole, atol=1e-5) and alone.dtype == torch.float32
    assert torch.get_num_threads() == threads  # one thread for that call only
    with pytest.raises(ValueError, match="workers"):
        EmotionPredictor(tiny_model).encoder.encode(crops, workers=0)
    # the same frames already preprocessed: `encode_tensor` is `encode_images` after `to_tensor`
    x = emoclip.model.preprocess.to_tensor(crops, tiny_model.config.preprocess)
    tensor = EmotionPredictor(tiny_model, encode_workers=3).encoder.encode_tensor(x)
    assert torch.allclose(tensor, whole, atol=1e-5) and tensor.dtype == torch.float32
