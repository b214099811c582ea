"""emoclip.weights.convert: the authors' checkpoints -> EmoCLIP safetensors, checked against an
independent re-implementation of the authors' model (tests/authors_reference.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import pickle
import shlex
import socket

import pytest
import torch
from authors_reference import (
    DownstreamTask,
    VClip,
    build_clip,
    ddp_state_dict,
    openai_fp16_,
    param_count,
    randomize_,
)
from hub_fixtures import fake_open_clip_tag
from safetensors.torch import load_file, save_file

import emoclip
from emoclip.weights.convert import convert_checkpoint
from emoclip.weights.convert_keys import authors_to_emoclip, detect_layout
from emoclip.weights.files import CheckpointError, file_sha256
from emoclip.weights.registry import get_spec

TINY = "test-emoclip-tiny"  # embed 32; temporal depth 2, heads 2, head_dim 16, mlp 32
TOL = 1e-4
SENTENCES = [
    "A person smiles broadly, eyes crinkling with happiness.",
    "Someone frowns angrily with tightened lips and lowered brows.",
    "A sad face, the corners of the mouth turned down.",
]


def tiny_config():
    return get_spec(TINY).config()


def authors_tiny_vclip(seed: int, depth: int = 2) -> VClip:
    """The authors' VClip at the tiny test architecture, every parameter random."""
    t = tiny_config().model.temporal
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = VClip(
        build_clip(tiny_config().model.backbone_config),
        depth=depth,
        heads=t.heads,
        head_dim=t.head_dim,
        mlp_dim=t.mlp_dim,
        num_positions=t.max_positions,
    )
    return randomize_(model, gen).eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.fixture(scope="module")
def authors():
    """(model, DDP state dict) of a random tiny VClip."""
    model = authors_tiny_vclip(seed=1)
    return model, ddp_state_dict(model)


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(7)
    return torch.randn(2, 5, 3, 32, 32, generator=gen), emoclip.tokenize(SENTENCES)


def assert_matches_reference(model, reference, frames, tokens, tol=TOL) -> dict[str, float]:
    with torch.no_grad():
        video, ref_video = (
            model.encode_video(frames, normalize=False),
            reference.encode_video(frames),
        )
        text, ref_text = model.encode_text(tokens, normalize=False), reference.encode_text(tokens)
    diffs = {"video": max_diff(video, ref_video), "text": max_diff(text, ref_text)}
    assert diffs["video"] < tol and diffs["text"] < tol, diffs
    assert ref_video.abs().max() > 0.1 and ref_text.abs().max() > 0.01  # not trivially small
    return diffs


# ----------------------------------------------------------------------------- key mapping


def test_layout_and_key_mapping(authors):
    _, ddp = authors
    plain = {k[len("module.") :]: v for k, v in ddp.items()}
    assert detect_layout(ddp) == detect_layout(plain) == "vclip"
    before = dict(ddp)
    mapped = authors_to_emoclip(ddp, "vclip")
    assert ddp.keys() == before.keys()  # pure: the input is left alone
    assert all(mapped[k] is v for k, v in authors_to_emoclip(plain, "vclip").items())
    pre = "temporal.temporal_transformer.layers.1."
    expected = {
        "0.fn.norm.weight": "norm1.weight",
        "0.fn.norm.bias": "norm1.bias",
        "0.fn.fn.to_qkv.weight": "attn.qkv.weight",
        "0.fn.fn.to_out.0.weight": "attn.proj.weight",
        "0.fn.fn.to_out.0.bias": "attn.proj.bias",
        "1.fn.norm.weight": "norm2.weight",
        "1.fn.norm.bias": "norm2.bias",
        "1.fn.fn.net.0.weight": "mlp.fc1.weight",
        "1.fn.fn.net.0.bias": "mlp.fc1.bias",
        "1.fn.fn.net.3.weight": "mlp.fc2.weight",
        "1.fn.fn.net.3.bias": "mlp.fc2.bias",
    }
    for theirs, ours in expected.items():
        assert mapped[f"temporal.blocks.1.{ours}"] is plain[pre + theirs]
    for key in (
        "logit_scale",
        "backbone.logit_scale",
        "backbone.visual.conv1.weight",
        "backbone.transformer.resblocks.0.attn.in_proj_weight",
        "temporal.cls_token",
        "temporal.pos_embedding",
    ):
        assert mapped[key] is plain[key]
    assert mapped.keys() == emoclip.EmoCLIP(tiny_config()).state_dict().keys()


# ----------------------------------------------------------------------------- 1. VClip layout


def test_vclip_checkpoint_matches_authors_model(authors, inputs, tmp_path):
    reference, ddp = authors
    src = tmp_path / "4.pth"
    torch.save(ddp, src)
    out = convert_checkpoint(
        src, tmp_path / f"{TINY}.safetensors", config=TINY, cache_dir=tmp_path / "hf"
    )
    model = emoclip.load_model(out)
    diffs = assert_matches_reference(model, reference, *inputs)
    print(f"tiny vclip max abs diff: {diffs}")
    assert torch.equal(model.logit_scale.detach(), reference.logit_scale.detach())
    assert torch.equal(model.backbone.logit_scale.detach(), reference.backbone.logit_scale.detach())

    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["name"] == TINY
    assert sidecar["provenance"] == {
        "converted_from": "4.pth",
        "source_sha256": file_sha256(src),
        "layout": "vclip",
        "dropped": [],
    }
    # found by registry name in a weights folder, too
    by_name = emoclip.load_model(TINY, weights_dirs=[tmp_path])
    assert by_name.source == str(out)
    assert_matches_reference(by_name, reference, *inputs)


def test_comparison_is_sensitive_to_a_wrong_mapping(authors, inputs, tmp_path):
    """Swapping the two LayerNorms of a layer (same shapes) must show up far above the tolerance."""
    reference, ddp = authors
    bad = dict(ddp)
    pre = "module.temporal.temporal_transformer.layers.0."
    bad[pre + "0.fn.norm.weight"], bad[pre + "1.fn.norm.weight"] = (
        ddp[pre + "1.fn.norm.weight"],
        ddp[pre + "0.fn.norm.weight"],
    )
    torch.save(bad, tmp_path / "bad.pth")
    model = emoclip.load_model(
        convert_checkpoint(tmp_path / "bad.pth", tmp_path / "bad.safetensors", config=TINY)
    )
    frames, _ = inputs
    with torch.no_grad():
        assert (
            max_diff(model.encode_video(frames, normalize=False), reference.encode_video(frames))
            > 1e-2
        )
        fresh = emoclip.EmoCLIP(tiny_config()).eval()
        assert (
            max_diff(fresh.encode_video(frames, normalize=False), reference.encode_video(frames))
            > 1e-2
        )


def test_without_ddp_prefix_converts_identically(authors, tmp_path):
    _, ddp = authors
    torch.save(ddp, tmp_path / "ddp.pth")
    torch.save({k[len("module.") :]: v for k, v in ddp.items()}, tmp_path / "plain.pth")
    a = load_file(convert_checkpoint(tmp_path / "ddp.pth", tmp_path / "a.safetensors", config=TINY))
    b = load_file(
        convert_checkpoint(tmp_path / "plain.pth", tmp_path / "b.safetensors", config=TINY)
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a safetensors source and a {"state_dict": ...} wrapper are read too
    save_file({k: v.contiguous() for k, v in ddp.items()}, tmp_path / "ddp.safetensors")
    torch.save({"state_dict": ddp, "epoch": torch.tensor(3)}, tmp_path / "wrapped.pth")
    for name in ("ddp.safetensors", "wrapped.pth"):
        c = load_file(
            convert_checkpoint(tmp_path / name, tmp_path / f"c-{name}.safetensors", config=TINY)
        )
        assert all(torch.equal(a[k], c[k]) for k in a)


def test_fp16_mixed_checkpoint_converts_to_fp32(authors, inputs, tmp_path):
    """The authors' CUDA checkpoints mix fp16 (Linear/Conv/MHA/proj) and fp32 (norms, embeddings)."""
    reference = copy.deepcopy(authors[0])
    openai_fp16_(reference.backbone)
    ddp = ddp_state_dict(reference)
    assert ddp["module.backbone.text_projection"].dtype == torch.float16
    assert ddp["module.backbone.visual.conv1.weight"].dtype == torch.float16
    assert ddp["module.backbone.transformer.resblocks.0.attn.in_proj_weight"].dtype == torch.float16
    assert ddp["module.backbone.ln_final.weight"].dtype == torch.float32
    assert ddp["module.logit_scale"].dtype == torch.float32
    torch.save(ddp, tmp_path / "mixed.pth")
    reference.float()  # the same fp16-rounded values, computed in fp32

    out = convert_checkpoint(tmp_path / "mixed.pth", tmp_path / "fp32.safetensors", config=TINY)
    tensors = load_file(out)
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    assert torch.equal(
        tensors["backbone.text_projection"], ddp["module.backbone.text_projection"].float()
    )
    assert_matches_reference(emoclip.load_model(out), reference, *inputs)

    half = convert_checkpoint(
        tmp_path / "mixed.pth", tmp_path / "fp16.safetensors", config=TINY, dtype=torch.float16
    )
    assert {t.dtype for t in load_file(half).values()} == {torch.float16}
    assert emoclip.load_model(half).dtype == torch.float32


# ----------------------------------------------------------------------------- 2. real shapes


@pytest.mark.slow
def test_real_vitb32_shapes_convert_and_match(tmp_path):
    import open_clip

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    backbone = build_clip(open_clip.get_model_config("ViT-B-32-quickgelu"))
    # the authors' VClip(num_layers=2): d_model 512, nhead 8, dim_forward 2048 -> head size 2048, FFN 512
    reference = randomize_(
        VClip(backbone, depth=2, heads=8, head_dim=2048, mlp_dim=512, num_positions=1024), gen
    ).eval()
    openai_fp16_(reference.backbone)  # as clip.load leaves it on CUDA (reference.md §7.1)
    ddp = ddp_state_dict(reference)
    keys = list(ddp)
    assert len(keys) == 327 and keys[0] == "module.logit_scale"
    backbone_keys = [k for k in keys if k.startswith("module.backbone.")]
    temporal = {k: v for k, v in ddp.items() if k.startswith("module.temporal.")}
    assert keys[1:303] == backbone_keys and len(backbone_keys) == 302
    assert len(temporal) == 24 and param_count(temporal) == 68_689_408
    assert param_count({k: ddp[k] for k in backbone_keys}) == 151_277_313
    assert ddp["module.temporal.temporal_transformer.layers.1.0.fn.fn.to_qkv.weight"].shape == (
        49152,
        512,
    )
    assert ddp["module.temporal.temporal_transformer.layers.1.0.fn.fn.to_out.0.weight"].shape == (
        512,
        16384,
    )
    assert ddp["module.backbone.visual.proj"].dtype == torch.float16
    assert len(DownstreamTask(reference, 512).state_dict()) == 180  # reference.md §7.3

    src = tmp_path / "4.pth"
    torch.save(ddp, src)
    del ddp, temporal
    reference.float()
    out = convert_checkpoint(src, tmp_path / "emoclip-vitb32.safetensors", config="emoclip-vitb32")
    src.unlink()
    model = emoclip.load_model("emoclip-vitb32", weights_dirs=[tmp_path])
    assert model.source == str(out)
    gen = torch.Generator().manual_seed(3)
    frames = torch.randn(1, 2, 3, 224, 224, generator=gen)
    diffs = assert_matches_reference(model, reference, frames, emoclip.tokenize(SENTENCES[:2]))
    print(f"real ViT-B/32 max abs diff: {diffs}")


# ----------------------------------------------------------------------------- 3. DownstreamTask layout


@pytest.fixture(scope="module")
def downstream():
    """(DownstreamTask model, its state dict, a separate random tiny CLIP for the text tower)."""
    vclip = authors_tiny_vclip(seed=2)
    task = DownstreamTask(vclip, d_model=32)
    randomize_(task.mlp, torch.Generator().manual_seed(4))
    text_clip = randomize_(
        build_clip(tiny_config().model.backbone_config), torch.Generator().manual_seed(5)
    ).eval()
    return task.eval(), task.state_dict(), text_clip


def check_downstream_result(out, task, state, text_clip, inputs):
    tensors = load_file(out)
    for key, value in state.items():
        if key.startswith("backbone."):
            assert torch.equal(tensors["backbone.visual." + key[len("backbone.") :]], value)
    text_state = text_clip.state_dict()
    text_keys = [
        k for k in tensors if k.startswith("backbone.") and not k.startswith("backbone.visual.")
    ]
    assert text_keys and all(
        torch.equal(tensors[k], text_state[k[len("backbone.") :]]) for k in text_keys
    )
    assert torch.equal(tensors["logit_scale"], text_state["logit_scale"])
    assert not any(k.startswith("mlp.") for k in tensors)
    model = emoclip.load_model(out)
    frames, tokens = inputs
    with torch.no_grad():
        video = max_diff(model.encode_video(frames, normalize=False), task.encode_video(frames))
        text = max_diff(model.encode_text(tokens, normalize=False), text_clip.encode_text(tokens))
    assert video < TOL and text < TOL, (video, text)
    return {"video": video, "text": text}


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_downstream_with_text_tower_file(downstream, inputs, tmp_path, caplog, suffix):
    task, state, text_clip = downstream
    assert detect_layout(state) == "downstream"
    assert sum(k.startswith("mlp.") for k in state) == 4
    torch.save(state, tmp_path / "downstream.pth")
    tower = tmp_path / f"clip{suffix}"
    if suffix == ".pt":
        torch.save(ddp_state_dict(text_clip), tower)  # a DDP-prefixed pickle is fine too
    else:
        save_file(text_clip.state_dict(), tower)
    with caplog.at_level(logging.WARNING, logger="emoclip.weights.convert"):
        out = convert_checkpoint(
            tmp_path / "downstream.pth", tmp_path / "ds.safetensors", config=TINY, text_tower=tower
        )
    assert "mlp.0.weight" in caplog.text
    diffs = check_downstream_result(out, task, state, text_clip, inputs)
    print(f"downstream max abs diff: {diffs}")
    prov = json.loads(out.with_suffix(".json").read_text())["provenance"]
    assert prov["layout"] == "downstream" and prov["text_tower"] == tower.name
    assert prov["dropped"] == ["mlp.0.bias", "mlp.0.weight", "mlp.2.bias", "mlp.2.weight"]


@pytest.fixture
def no_network(monkeypatch):
    """HF_HUB_OFFLINE=1, and any socket connection fails the test."""
    from emoclip.weights import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.reset_probe()

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield
    hub.reset_probe()


@pytest.fixture
def fake_pretrained(monkeypatch):
    """A pretrained tag 'fake' for the tiny backbone, served from hf-hub someorg/tiny-clip."""
    cfg = tiny_config()
    fake_open_clip_tag(monkeypatch, cfg.model.backbone, "fake", "someorg/tiny-clip/")
    return cfg.replace(model=dataclasses.replace(cfg.model, backbone_pretrained="fake"))


def test_downstream_without_text_tower_fails_clearly(
    downstream, tmp_path, no_network, fake_pretrained
):
    _, state, _ = downstream
    torch.save(state, tmp_path / "downstream.pth")
    for config in (fake_pretrained, TINY):  # a tag that is not cached; no pretrained tag at all
        with pytest.raises(CheckpointError, match="text tower") as info:
            convert_checkpoint(
                tmp_path / "downstream.pth",
                tmp_path / "ds.safetensors",
                config=config,
                cache_dir=tmp_path / "empty-cache",
            )
        assert "--text-tower" in str(info.value) and "online" in str(info.value)
    assert not (tmp_path / "ds.safetensors").exists()
    with pytest.raises(CheckpointError, match="text tower file not found"):
        convert_checkpoint(
            tmp_path / "downstream.pth",
            tmp_path / "ds.safetensors",
            config=TINY,
            text_tower=tmp_path / "nope.safetensors",
        )


def test_downstream_takes_text_tower_from_hf_cache(
    downstream, inputs, tmp_path, no_network, fake_pretrained
):
    task, state, text_clip = downstream
    cache = tmp_path / "hf"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someorg--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(text_clip.state_dict(), repo / "snapshots" / commit / "open_clip_model.safetensors")
    torch.save(state, tmp_path / "downstream.pth")
    out = convert_checkpoint(
        tmp_path / "downstream.pth",
        tmp_path / "ds.safetensors",
        config=fake_pretrained,
        cache_dir=cache,
    )
    check_downstream_result(out, task, state, text_clip, inputs)
    prov = json.loads(out.with_suffix(".json").read_text())["provenance"]
    assert "hf-hub:someorg/tiny-clip" in prov["text_tower"]


# ----------------------------------------------------------------------------- 4. errors


def test_unknown_layout_names_what_it_found(tmp_path):
    torch.save(
        {
            "encoder.layer.0.weight": torch.zeros(2),
            "encoder.layer.1.weight": torch.zeros(2),
            "head.bias": torch.zeros(1),
        },
        tmp_path / "x.pth",
    )
    with pytest.raises(CheckpointError, match=r"found 3 keys: encoder\.\* \(2\), head\.\* \(1\)"):
        convert_checkpoint(tmp_path / "x.pth", tmp_path / "x.safetensors", config=TINY)
    with pytest.raises(CheckpointError, match="plain CLIP"):
        detect_layout(build_clip(tiny_config().model.backbone_config).state_dict())
    with pytest.raises(CheckpointError, match="EmoCLIP checkpoint already"):
        detect_layout(emoclip.EmoCLIP(tiny_config()).state_dict())
    with pytest.raises(CheckpointError, match="no tensors"):
        detect_layout({})
    assert not (tmp_path / "x.safetensors").exists()


def test_wrong_temporal_depth(tmp_path):
    torch.save(ddp_state_dict(authors_tiny_vclip(seed=3, depth=4)), tmp_path / "deep.pth")
    with pytest.raises(
        CheckpointError, match=f"checkpoint has 4 temporal layers, config {TINY} expects 2"
    ):
        convert_checkpoint(tmp_path / "deep.pth", tmp_path / "out.safetensors", config=TINY)
    with pytest.raises(CheckpointError, match="no temporal transformer"):
        convert_checkpoint(
            tmp_path / "deep.pth", tmp_path / "out.safetensors", config="test-clip-tiny"
        )


def test_shape_mismatch_and_unknown_keys(authors, tmp_path):
    _, ddp = authors
    torch.save(ddp, tmp_path / "a.pth")
    cfg = tiny_config()
    narrow = cfg.replace(
        model=dataclasses.replace(
            cfg.model, temporal=dataclasses.replace(cfg.model.temporal, head_dim=8)
        )
    )
    with pytest.raises(
        CheckpointError, match=r"does not fit config .*attn\.qkv\.weight: \(96, 32\) vs \(48, 32\)"
    ):
        convert_checkpoint(tmp_path / "a.pth", tmp_path / "out.safetensors", config=narrow)
    extra = dict(
        ddp,
        **{"module.temporal.temporal_transformer.layers.0.0.fn.fn.to_qkv.bias": torch.zeros(96)},
    )
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="no EmoCLIP counterpart.*to_qkv.bias"):
        convert_checkpoint(tmp_path / "extra.pth", tmp_path / "out.safetensors", config=TINY)
    missing = {k: v for k, v in ddp.items() if "resblocks.1.ln_2" not in k}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="missing"):
        convert_checkpoint(tmp_path / "missing.pth", tmp_path / "out.safetensors", config=TINY)
    assert not (tmp_path / "out.safetensors").exists()


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused_without_running_code(authors, tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = dict(authors[1], **{"module.evil": _Evil(str(marker))})
    src = tmp_path / "evil.pth"
    if writer == "pickle":
        with open(src, "wb") as fh:
            pickle.dump(payload, fh)
    else:
        torch.save(payload, src)
    with pytest.raises(CheckpointError, match="refused"):
        convert_checkpoint(src, tmp_path / "out.safetensors", config=TINY)
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()
