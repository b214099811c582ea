"""Image-tower precision choice and the inference fast paths (same function, less work)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import emoclip
import emoclip.inference.autotune as autotune
from emoclip.inference.fast_paths import FastImageTower, FastTemporal
from emoclip.inference.predictor import EmotionPredictor
from emoclip.inference.vit_weights import UnsupportedTower
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
    a, b = fp32.parts.encoder.encode(crops), bf16.parts.encoder.encode(crops)
    assert bf16.parts.encoder.precision == "bf16" and fp32.parts.encoder.precision == "fp32"
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert F.cosine_similarity(a, b, dim=-1).min() >= 0.99
    info = bf16.parts.encoder.precision_info()
    assert info["requested"] == "bf16" and info["cosine"] >= autotune.BF16_MIN_COSINE
    assert info["implementation"] in {c.name for c in autotune.CANDIDATES if c.precision == "bf16"}
    assert "cosine" in info["reason"]  # the parity check ran for an explicit bf16 too
    with torch.inference_mode():  # fp32 is the model's own tower
        expected = model.encode_image(
            emoclip.model.preprocess.to_tensor(crops, model.config.preprocess)
        )
    assert torch.allclose(a, expected, atol=1e-6)


def test_auto_keeps_small_towers_in_fp32(tiny_model):
    p = EmotionPredictor(tiny_model)
    assert p.settings.precision == "auto" and p.parts.encoder.precision == "fp32"
    assert p.parts.encoder.precision_info()["implementation"] == "plain-fp32"
    assert "too small" in p.parts.encoder.precision_info()["failures"]["fast-bf16-onednn"]


def _broken_bf16_tower(model, candidate, batch, on_block=None, compiling=None):
    """A "tower" that computes the wrong function for bf16: the real parity check must catch it."""
    if candidate.precision != "bf16":
        return REAL_BUILD(model, candidate, batch, on_block, compiling)
    gen = torch.Generator().manual_seed(1)
    return lambda x: torch.randn(len(x), model.embed_dim, generator=gen)


REAL_BUILD = autotune.build_candidate


def test_explicit_bf16_refuses_with_the_reason_when_no_bf16_tower_passes(monkeypatch, tmp_path):
    monkeypatch.setattr(autotune, "build_candidate", _broken_bf16_tower)
    model = _fresh_model()
    bf16 = EmotionPredictor(model, precision="bf16", tower_cache=str(tmp_path))
    with pytest.raises(
        RuntimeError, match=r"'bf16' refused: .*failed the parity check: cosine"
    ) as err:
        _ = bf16.parts.encoder.precision
    assert "fast-bf16-onednn" in str(err.value) and "autocast-bf16" in str(err.value)
    with pytest.raises(RuntimeError, match="refused"):  # no frame is encoded in a refused precision
        bf16.parts.encoder.encode(_crops(model))
    with pytest.raises(RuntimeError, match="refused"):  # nor a video decoded
        bf16.predict(np.zeros((4, 64, 64, 3), dtype=np.uint8))
    assert "refused" in bf16.parts.encoder.tower_report()  # the report says so without raising
    assert (
        EmotionPredictor(model, precision="fp32").parts.encoder.encode(_crops(model)).shape[0] == 6
    )


def test_precision_setting_and_validation(monkeypatch):
    monkeypatch.setenv("EMOCLIP_PRECISION", "bf16")
    model = _fresh_model()
    from_env = AnalysisSettings.from_env({"EMOCLIP_PRECISION": "BF16"})
    assert EmotionPredictor(model, from_env).parts.encoder.precision == "bf16"
    assert (
        EmotionPredictor(model, from_env, precision="fp32").parts.encoder.precision == "fp32"
    )  # a flag wins
    with pytest.raises(ValueError, match="precision"):
        EmotionPredictor(model, precision="fp16")


def test_edited_weights_rebuild_the_bf16_tower():
    model = _fresh_model()
    p = EmotionPredictor(model, precision="bf16")
    crops = _crops(model)
    before = p.parts.encoder.encode(crops)
    with torch.no_grad():
        model.backbone.visual.proj.mul_(2.0)
    after = p.parts.encoder.encode(crops)
    # the tower was rebuilt (possibly another bf16 candidate, measured again): it follows the edit
    assert F.cosine_similarity(after, before, dim=-1).min() >= autotune.BF16_MIN_COSINE
    ratio = after.norm(dim=-1) / before.norm(dim=-1)
    assert torch.allclose(ratio, torch.full_like(ratio, 2.0), rtol=0.01)


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

    monkeypatch.setattr(p.parts.encoder, "encode", boom)
    with pytest.raises(RuntimeError, match="encoder failed"):
        p.predict(path)
    p.close()
    import threading

    assert not [t for t in threading.enumerate() if t.name == "emoclip-decode"]


@pytest.mark.parametrize("backend", ["public", "onednn"])
def test_fast_image_tower_matches_open_clip(tiny_model, backend):
    """fp32 fast towers need no particular ISA: they are built and match on every CPU (no skip)."""
    visual = tiny_model.backbone.visual
    s = tiny_model.image_size
    x = torch.randn(3, 3, s, s)
    with torch.inference_mode():
        fast = FastImageTower.build(visual, torch.float32, backend=backend)
        assert torch.allclose(fast(x), visual(x), atol=1e-5)


def test_a_tower_that_cannot_be_built_raises_with_the_reason(tiny_model):
    with pytest.raises(UnsupportedTower, match="conv1"):
        FastImageTower.build(torch.nn.Linear(3, 3))
    visual = copy.deepcopy(tiny_model.backbone.visual)
    visual.patch_dropout = torch.nn.Dropout(0.5)
    with pytest.raises(UnsupportedTower, match="patch_dropout is Dropout"):
        FastImageTower.build(visual)
    with pytest.raises(ValueError, match="linear backend"):
        FastImageTower.build(tiny_model.backbone.visual, torch.float32, backend="nope")


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
    whole = EmotionPredictor(tiny_model, encode_workers=1).parts.encoder.encode(crops)
    split = EmotionPredictor(tiny_model, encode_workers=3).parts.encoder.encode(crops)
    assert split.shape == whole.shape and torch.allclose(split, whole, atol=1e-5)
    threads = torch.get_num_threads()
    alone = EmotionPredictor(tiny_model, encode_workers=3).parts.encoder.encode(crops, workers=1)
    assert torch.allclose(alone, whole, atol=1e-5) and alone.dtype == torch.float32
    assert torch.get_num_threads() == threads  # one thread for that call only
    with pytest.raises(ValueError, match="workers"):
        EmotionPredictor(tiny_model).parts.encoder.encode(crops, workers=0)
    # the same frames already preprocessed: `encode_tensor` is `encode_images` after `to_tensor`
    x = emoclip.model.preprocess.to_tensor(crops, tiny_model.config.preprocess)
    tensor = EmotionPredictor(tiny_model, encode_workers=3).parts.encoder.encode_tensor(x)
    assert torch.allclose(tensor, whole, atol=1e-5) and tensor.dtype == torch.float32
