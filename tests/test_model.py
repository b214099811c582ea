"""EmoCLIP module: shapes, normalisation, pooling semantics, real ViT-B/32 shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import emoclip
from emoclip.model.config import EmoCLIPConfig, TemporalConfig
from emoclip.model.temporal import TemporalTransformer


def test_encode_video_and_text_shapes(tiny_model):
    frames = torch.randn(3, 6, 3, 32, 32)
    video = tiny_model.encode_video(frames)
    text = tiny_model.encode_text(emoclip.tokenize(["a smiling face", "a frown"]))
    assert video.shape == (3, 32) and text.shape == (2, 32)
    assert torch.allclose(video.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    raw = tiny_model.encode_video(frames, normalize=False)
    assert torch.allclose(F.normalize(raw, dim=-1), video, atol=1e-6)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(3), atol=1e-2)


def test_video_embedding_is_the_cls_output_and_depends_on_order(tiny_model):
    frames = torch.randn(1, 5, 3, 32, 32)
    per_frame = tiny_model.encode_image(frames[0])[None]  # (1, 5, D)
    assert torch.allclose(
        tiny_model.aggregate(per_frame, normalize=False), tiny_model.temporal(per_frame), atol=1e-6
    )
    shuffled = frames[:, torch.tensor([4, 3, 2, 1, 0])]
    # learned positions make the temporal model order-aware
    assert not torch.allclose(
        tiny_model.encode_video(frames), tiny_model.encode_video(shuffled), atol=1e-4
    )


def test_mean_pooling_baseline_is_mean_of_normalised_frames():
    model = emoclip.load_model("test-clip-tiny")
    assert model.temporal is None
    frames = torch.randn(2, 4, 3, 32, 32)
    per_frame = model.encode_image(frames.flatten(0, 1)).view(2, 4, -1)
    expected = F.normalize(F.normalize(per_frame, dim=-1).mean(1), dim=-1)
    assert torch.allclose(model.encode_video(frames), expected, atol=1e-6)


def test_forward_gives_scaled_symmetric_logits(tiny_model):
    frames = torch.randn(2, 3, 3, 32, 32)
    tokens = emoclip.tokenize(["a", "b", "c"])
    per_video, per_text = tiny_model(frames, tokens)
    assert per_video.shape == (2, 3) and torch.equal(per_video.t(), per_text)
    cos = tiny_model.encode_video(frames) @ tiny_model.encode_text(tokens).t()
    assert torch.allclose(per_video, tiny_model.logit_scale.exp() * cos, atol=1e-4)


def test_temporal_transformer_rejects_too_many_frames():
    tt = TemporalTransformer(
        8, TemporalConfig(depth=1, heads=2, head_dim=4, mlp_dim=8, max_positions=5)
    )
    assert tt(torch.randn(2, 4, 8)).shape == (2, 8)
    with pytest.raises(ValueError, match="at most 4 frames"):
        tt(torch.randn(1, 5, 8))


def test_tokenize_matches_clip_conventions():
    tokens = emoclip.tokenize(["hello world", "word " * 200])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.int64
    sot, eot = 49406, 49407
    assert tokens[0, 0] == sot and tokens[0, 3] == eot and tokens[0, 4:].abs().sum() == 0
    assert tokens[1, 0] == sot and tokens[1, -1] == eot  # truncated, <end> kept last
    assert emoclip.tokenize("hello world").shape == (1, 77)


def test_authors_shapes_in_vitb32_config():
    cfg = EmoCLIPConfig.load(emoclip.model.config.packaged_config_dir() / "emoclip-vitb32.json")
    t = cfg.model.temporal
    assert (t.depth, t.heads, t.head_dim, t.mlp_dim, t.max_positions) == (2, 8, 2048, 512, 1024)
    assert cfg.model.backbone == "ViT-B-32-quickgelu" and cfg.model.pooling == "cls"


@pytest.mark.slow
def test_real_vitb32_shapes_random_init():
    model = emoclip.load_model("test-emoclip-vitb32")
    sd = model.state_dict()
    temporal = {k: v for k, v in sd.items() if k.startswith("temporal.")}
    assert len(temporal) == 24
    assert sum(v.numel() for v in temporal.values()) == 68_689_408
    assert sd["temporal.blocks.0.attn.qkv.weight"].shape == (49152, 512)
    assert sd["temporal.blocks.0.attn.proj.weight"].shape == (512, 16384)
    assert sd["temporal.pos_embedding"].shape == (1, 1024, 512)
    assert sum(v.numel() for k, v in sd.items() if k.startswith("backbone.")) == 151_277_313
    with torch.inference_mode():
        video = model.encode_video(torch.randn(1, 2, 3, 224, 224))
        text = model.encode_text(emoclip.tokenize(["a happy face"]))
    assert video.shape == (1, 512) and text.shape == (1, 512)
    assert math.isclose(model.logit_scale.item(), math.log(1 / 0.07), rel_tol=1e-6)
