"""Weights memory: checkpoints stay in their memory map, and the pages of weights the fast paths
copied are given back without changing any result (issue #14, P7)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

import emoclip
from emoclip.inference.fast_paths import FastTemporal
from emoclip.inference.memory import private_file_maps, release_file_pages, resident_bytes
from emoclip.inference.predictor import EmotionPredictor
from emoclip.model.network import EmoCLIP
from emoclip.settings import AnalysisSettings
from emoclip.weights.files import save_checkpoint
from emoclip.weights.registry import get_spec

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="pagemap and madvise are Linux's"
)


def _saved(tmp_path, config=None, name="m"):
    """A random model saved as a checkpoint, and the model itself (the reference)."""
    torch.manual_seed(0)
    model = EmoCLIP(config) if config is not None else emoclip.load_model("test-emoclip-tiny")
    path = save_checkpoint(model.state_dict(), model.config, tmp_path / f"{name}.safetensors")
    return path, model.eval()


def _in_file_map(t: torch.Tensor) -> bool:
    addr = t.untyped_storage().data_ptr()
    return any(start <= addr < end for start, end in private_file_maps())


def _crops(model, n=6, seed=0):
    s = model.image_size
    return np.random.default_rng(seed).integers(0, 256, (n, s, s, 3), dtype=np.uint8)


def _folding_config():
    """The tiny architecture with a temporal model wide enough for `FastTemporal` (heads wider than D/2)."""
    config = get_spec("test-emoclip-tiny").config()
    temporal = dataclasses.replace(config.model.temporal, heads=2, head_dim=256)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, temporal=temporal))


def test_checkpoint_loads_in_its_memory_map_with_the_same_state(tmp_path):
    path, reference = _saved(tmp_path)
    model = emoclip.load_model(path)
    ref_state, state = reference.state_dict(), model.state_dict()
    assert state.keys() == ref_state.keys()
    for key, value in ref_state.items():
        assert state[key].dtype == value.dtype and torch.equal(state[key], value), key
    assert torch.equal(
        model.backbone.attn_mask, reference.backbone.attn_mask
    )  # rebuilt, not stored
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert all(
        _in_file_map(p) for p in model.backbone.visual.parameters()
    )  # not copied out of the file
    x = torch.randn(2, 3, model.image_size, model.image_size)
    tokens = emoclip.tokenize(["a happy face", "anger"])
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), reference.encode_image(x))
        assert torch.equal(model.encode_text(tokens), reference.encode_text(tokens))
    before = model.backbone.visual.proj.detach().clone()
    with torch.no_grad():
        model.backbone.visual.proj.mul_(2.0)  # copy-on-write: the file is never written
    assert torch.equal(emoclip.load_model(path).backbone.visual.proj, before)


def test_bf16_tower_gives_back_the_fp32_tower_pages_and_results_do_not_change(
    tmp_path, monkeypatch
):
    path, _ = _saved(tmp_path)
    keep = AnalysisSettings.from_env({"EMOCLIP_RELEASE_WEIGHTS": "0"})
    kept = EmotionPredictor(emoclip.load_model(path), keep, precision="bf16")
    crops = _crops(kept.model)
    expected = kept.parts.encoder.encode(crops)
    assert kept.parts.encoder.tower().released_bytes == 0

    model = emoclip.load_model(path)
    visual = list(model.backbone.visual.parameters())
    x = torch.randn(3, 3, model.image_size, model.image_size)
    with torch.no_grad():
        fp32 = model.encode_image(x)  # every fp32 page read: resident
    resident = resident_bytes(visual)
    assert resident > 100_000
    predictor = EmotionPredictor(model, precision="bf16")
    got = predictor.parts.encoder.encode(crops)
    assert torch.equal(got, expected)  # the same tower, the same embeddings
    assert predictor.parts.encoder.tower().released_bytes >= resident // 2
    assert resident_bytes(visual) == 0
    with (
        torch.no_grad()
    ):  # the model used directly: the weights page back in from the file, unchanged
        assert torch.equal(model.encode_image(x), fp32)
    assert resident_bytes(visual) >= resident // 2
    assert torch.equal(
        predictor.parts.encoder.encode(crops), expected
    )  # the tower was not rebuilt or changed


def test_fp32_precision_keeps_the_tower_resident(tmp_path):
    path, reference = _saved(tmp_path)
    model = emoclip.load_model(path)
    predictor = EmotionPredictor(model, precision="fp32")
    crops = _crops(model)
    got = predictor.parts.encoder.encode(crops)
    visual = list(model.backbone.visual.parameters())
    resident = resident_bytes(visual)
    assert resident > 100_000
    predictor.parts.encoder.encode(crops)
    assert resident_bytes(visual) == resident
    assert torch.allclose(
        got, EmotionPredictor(reference, precision="fp32").parts.encoder.encode(crops), atol=1e-6
    )


def test_weights_edited_in_place_are_never_given_back(tmp_path):
    path, _ = _saved(tmp_path)
    model = emoclip.load_model(path)
    proj = model.backbone.visual.proj
    with torch.no_grad():
        proj.mul_(2.0)  # these pages are now the process's own copy: only memory holds the edit
    edited = proj.detach().clone()
    EmotionPredictor(model, precision="bf16").parts.encoder.encode(_crops(model))
    assert torch.equal(proj, edited)
    assert release_file_pages([proj]) == 0 and torch.equal(proj, edited)


def test_weights_in_memory_are_left_alone(tiny_model):
    weights = [p.detach().clone() for p in tiny_model.backbone.visual.parameters()]
    assert not any(_in_file_map(w) for w in weights)
    assert release_file_pages(weights) == 0
    assert all(torch.equal(w, p) for w, p in zip(weights, tiny_model.backbone.visual.parameters()))
    predictor = EmotionPredictor(tiny_model, precision="bf16")
    predictor.parts.encoder.encode(_crops(tiny_model))
    assert predictor.parts.encoder.tower().released_bytes == 0


def test_folded_temporal_gives_back_the_unfolded_attention_pages(tmp_path):
    path, reference = _saved(tmp_path, _folding_config(), name="wide")
    model = emoclip.load_model(path)
    assert FastTemporal.worthwhile(model.temporal)
    attn = [w for blk in model.temporal.blocks for w in (blk.attn.qkv.weight, blk.attn.proj.weight)]
    frames = torch.randn(3, 8, model.embed_dim)
    with torch.no_grad():
        direct = model.aggregate(frames)
    assert resident_bytes(attn) > 100_000
    predictor = EmotionPredictor(model, precision="fp32")
    pooled = predictor.parts.pooler.pool(frames)
    assert resident_bytes(attn) == 0
    with torch.no_grad():
        assert torch.allclose(pooled, reference.aggregate(frames), atol=1e-5)
        assert torch.equal(model.aggregate(frames), direct)  # the unfolded weights page back in
    assert torch.equal(predictor.parts.pooler.pool(frames), pooled)
