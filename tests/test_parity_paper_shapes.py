"""The inference path real users run, at the paper's shapes: ViT-B/32 (QuickGELU) + the temporal
model of 8 heads of 2,048 over 512-d embeddings, random weights (`test-emoclip-vitb32`, no download).

The thresholds asserted here are the parity figures the README and benchmarks/README.md state:
every candidate of the per-machine choice (`autotune.CANDIDATES`) at the bar the choice applies:
fast fp32 towers vs open_clip's module <= 1e-5 (max abs), bf16 towers cosine >= 0.999 per frame,
folded temporal vs the plain module <= 1e-5 (max abs), predictor video embeddings vs
`EmoCLIP.encode_video` on the same crops <= 1e-5 (fp32) and cosine >= 0.999 (bf16).

With random weights the video embeddings of different windows are close to each other (the temporal
model's learned positions dominate its input), so each check also asserts that the tolerance is far
below the difference between two windows of different frames: a path that pooled the wrong frames
would fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from toolchain import require_compiler

import emoclip
from emoclip.inference import autotune
from emoclip.inference.autotune import BY_NAME, CANDIDATES
from emoclip.inference.compiled_tower import (
    Compiling,
    unavailable_reason as compiled_unavailable,
)
from emoclip.inference.fast_paths import FastImageTower, FastTemporal
from emoclip.inference.linear_ops import BACKENDS
from emoclip.inference.predictor import EmotionPredictor
from emoclip.inference.tower_cache import read_cpu_info
from emoclip.model.preprocess import to_tensor

pytestmark = pytest.mark.slow

FAST_FP32_MAX_ABS = 1e-5  # fast fp32 tower vs open_clip's visual module (measured 2.9e-6)
BF16_MIN_COSINE = 0.999  # bf16 tower vs fp32, per frame (measured 0.99995); = autotune's bar
TEMPORAL_MAX_ABS = 1e-5  # folded temporal model vs TemporalTransformer (measured 7e-7)
PREDICTOR_FP32_MAX_ABS = (
    1e-5  # EmotionPredictor encode_images + pool vs encode_video (measured 3e-8)
)
CPU = read_cpu_info()
FRAMES = 12  # crops encoded: two 6-frame windows (small: the test runs on 2 shared cores)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return emoclip.load_model("test-emoclip-vitb32")


@pytest.fixture(scope="module")
def crops(model) -> np.ndarray:
    """(FRAMES, 224, 224, 3) uint8 smooth random images: distinct frames, like face crops in scale."""
    gen = torch.Generator().manual_seed(0)
    low = torch.rand(FRAMES, 3, 6, 6, generator=gen)
    images = F.interpolate(low, size=(model.image_size,) * 2, mode="bilinear", align_corners=False)
    images = (images + 0.05 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    return (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def frames(model, crops) -> torch.Tensor:
    """(FRAMES, 3, 224, 224) CLIP-normalised frames of `crops`."""
    return to_tensor(crops, model.config.preprocess)


@pytest.fixture(scope="module")
def reference(model, frames) -> torch.Tensor:
    """(FRAMES, 512) open_clip's fp32 image tower on `frames`."""
    with torch.inference_mode():
        return model.backbone.visual(frames)


def _windows(x: torch.Tensor) -> torch.Tensor:
    """(FRAMES, ...) -> (2, FRAMES / 2, ...): two windows of different frames."""
    return torch.stack([x[: FRAMES // 2], x[FRAMES // 2 :]])


def test_the_model_has_the_papers_shapes(model, reference):
    assert model.config.model.backbone == "ViT-B-32-quickgelu" and model.image_size == 224
    assert type(model.backbone.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    t = model.config.model.temporal
    assert (t.depth, t.heads, t.head_dim, t.mlp_dim, model.embed_dim) == (2, 8, 2048, 512, 512)
    assert FastTemporal.worthwhile(model.temporal)
    cos = F.normalize(reference, dim=-1) @ F.normalize(reference, dim=-1).t()
    assert (
        cos[~torch.eye(FRAMES, dtype=torch.bool)].max() < BF16_MIN_COSINE
    )  # frames are told apart


EAGER = [c for c in CANDIDATES if c.backend != "aoti"]  # compiled ones: one compile, below


@pytest.mark.parametrize("candidate", EAGER, ids=lambda c: c.name)
def test_every_candidate_tower_passes_its_parity_bar(model, frames, reference, candidate):
    """Each tower the per-machine choice may pick, built at the paper's shapes and held to the bar
    the choice applies (fp32 max abs <= 1e-5, bf16 cosine >= 0.999 per frame). Nothing is skipped
    on a CPU that has the ISA a candidate needs: a failure to build fails here."""
    if candidate.precision == "bf16" and not CPU.native_bf16:
        pytest.skip(
            f"this CPU ({CPU.model}) has neither avx512_bf16 nor amx_bf16: bf16 would be emulated"
        )
    with torch.inference_mode():
        out = autotune.build_candidate(model, candidate, batch=FRAMES)(frames)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    ok, figure, text = autotune.parity(candidate, out, reference)
    assert ok, f"{candidate.name}: {text}"
    if candidate.precision == "fp32":
        assert figure <= FAST_FP32_MAX_ABS
    else:
        assert F.cosine_similarity(out, reference, dim=-1).min() >= BF16_MIN_COSINE


def test_the_compiled_tower_passes_its_parity_bar(model, frames, reference, tmp_path):
    """The compiled candidate at the paper's shapes, compiled once (minutes on 2 cores): aoti-bf16
    where the CPU has native bf16 (else aoti-fp32), held to the choice's bar at two batch sizes
    (its batch is dynamic), then loaded again from its package without compiling. Skipped only
    without the toolchain (inductor, a C++ compiler), naming what is missing."""
    require_compiler()  # the one thing a machine may lack; torch's APIs must be there
    reason = compiled_unavailable()
    assert reason is None, f"compiled towers cannot be built: {reason}"
    candidate = BY_NAME["aoti-bf16" if CPU.native_bf16 else "aoti-fp32"]
    compiling = Compiling(tmp_path / "choice.json", runners=2, threads=1, build=True)
    with torch.inference_mode():
        tower = autotune.build_candidate(model, candidate, FRAMES, compiling=compiling)
        for n in (FRAMES, 1):
            out = tower(frames[:n])
            assert out.dtype == torch.float32 and out.shape == reference[:n].shape
            ok, _, text = autotune.parity(candidate, out, reference[:n])
            assert ok, f"{candidate.name} at batch {n}: {text}"
        warm = Compiling(tmp_path / "choice.json", runners=2, threads=1, build=False)
        again = autotune.build_candidate(model, candidate, FRAMES, compiling=warm)(frames)
    assert torch.equal(again, tower(frames))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_fp32_tower_matches_open_clip(model, frames, reference, backend):
    with torch.inference_mode():
        out = FastImageTower.build(model.backbone.visual, torch.float32, backend=backend)(frames)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert (out - reference).abs().max() <= FAST_FP32_MAX_ABS


def test_folded_temporal_matches_the_temporal_transformer(model, reference):
    gen = torch.Generator().manual_seed(1)
    embeddings = torch.randn(2, model.config.preprocess.num_frames, model.embed_dim, generator=gen)
    with torch.inference_mode():
        fast = FastTemporal(model.temporal)
        for x in (
            embeddings,
            embeddings[:, :5],
            _windows(reference),
        ):  # full window, short clip, real frames
            folded, plain = fast(x), model.temporal(x)
            assert folded.shape == plain.shape == (2, model.embed_dim)
            assert (folded - plain).abs().max() <= TEMPORAL_MAX_ABS
            assert (plain[0] - plain[1]).abs().max() > 100 * TEMPORAL_MAX_ABS  # the windows differ


def test_predictor_fp32_video_embeddings_match_encode_video(model, crops, frames):
    p = EmotionPredictor(model, precision="fp32", encode_workers=2)
    per_frame = p.parts.encoder.encode(crops)  # 12 crops: split over two data-parallel workers
    video = p.parts.pooler.pool(_windows(per_frame))  # the folded temporal model
    with torch.inference_mode():
        expected = model.encode_video(_windows(frames))
    assert p.parts.encoder.precision == "fp32" and video.shape == expected.shape == (
        2,
        model.embed_dim,
    )
    assert (video - expected).abs().max() <= PREDICTOR_FP32_MAX_ABS
    assert (expected[0] - expected[1]).abs().max() > 100 * PREDICTOR_FP32_MAX_ABS


def test_predictor_bf16_video_embeddings_match_encode_video(model, crops, frames, reference):
    if not CPU.native_bf16:
        pytest.skip(
            f"this CPU ({CPU.model}) has neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo: "
            "'auto' would not consider bf16, which the fp32 test covers"
        )
    p = EmotionPredictor(model, precision="bf16", encode_workers=2)
    assert p.parts.encoder.precision == "bf16", p.parts.encoder.precision_info()["reason"]
    assert p.parts.encoder.precision_info()["cosine"] >= BF16_MIN_COSINE
    per_frame = p.parts.encoder.encode(crops)
    assert F.cosine_similarity(per_frame, reference, dim=-1).min() >= BF16_MIN_COSINE
    video = p.parts.pooler.pool(_windows(per_frame))
    with torch.inference_mode():
        expected = model.encode_video(_windows(frames))
    assert F.cosine_similarity(video, expected, dim=-1).min() >= BF16_MIN_COSINE
    # bf16's error is well below the difference between two windows of different frames
    assert (video - expected).norm(dim=-1).max() < 0.25 * (expected[0] - expected[1]).norm()
