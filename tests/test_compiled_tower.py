"""Compiled image towers (issue #22 points 3 and 5): the ``aoti-*`` candidates compiled once per
model and machine by inductor, their packages kept beside the choice under the same key, loaded
warm without compiling or timing, a corrupt package ignored with a warning and compiled again, a
forced precision still overriding the choice, and the background compilation replacing the
serving tower only when it is faster. Tiny test model (a compile takes tens of seconds)."""

from __future__ import annotations

import logging

import pytest
import torch
from toolchain import require_compiler

import emoclip
import emoclip.inference.autotune as autotune
from emoclip.inference.autotune import BY_NAME, choose_tower, layout_key, parity_images
from emoclip.inference.compiled_tower import (
    ArtefactPending,
    Compiling,
    artefact_path,
    compiled_tower,
    unavailable_reason,
)
from emoclip.inference.parallel import Layout
from emoclip.inference.predictor import EmotionPredictor
from emoclip.inference.tower_cache import ChoiceCache, CpuInfo
from emoclip.inference.tower_challenge import challenge

pytestmark = pytest.mark.slow

CPU = CpuInfo("Test CPU", ("avx2", "avx512_bf16", "avx512f", "fma"))


@pytest.fixture(scope="module")
def toolchain() -> None:
    """A C++ compiler (else skip, or fail under CI), and torch's inductor APIs (else fail)."""
    require_compiler()
    reason = unavailable_reason()
    assert reason is None, f"compiled towers cannot be built: {reason}"


needs_toolchain = pytest.mark.usefixtures("toolchain")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return emoclip.load_model("test-emoclip-tiny")


@pytest.fixture(scope="module")
def package(model, tmp_path_factory, toolchain):
    """The tiny tower compiled once in fp32 (module-wide): (path, compile seconds)."""
    path = tmp_path_factory.mktemp("aoti") / "tower-aoti-fp32.pt2"
    _, seconds = _compiled(model, path, build=True)
    return path, seconds


def _compiled(model, path, build):
    return compiled_tower(
        model.backbone.visual,
        torch.float32,
        path,
        runners=2,
        threads=1,
        example=parity_images(model, 2),
        build=build,
    )


@needs_toolchain
def test_a_compiled_tower_matches_the_plain_one_and_loads_warm_without_compiling(model, package):
    path, seconds = package
    assert seconds > 0 and path.is_file()
    fn, again = _compiled(model, path, build=False)  # warm: loaded, nothing compiled
    assert again == 0.0
    for n in (1, 3, 7):  # the batch stays dynamic
        x = parity_images(model, n)
        with torch.inference_mode():
            ref = model.encode_image(x).float()
            out = fn(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert float((out - ref).abs().max()) <= autotune.FP32_MAX_ABS


@needs_toolchain
def test_a_corrupt_package_is_ignored_with_a_warning_and_compiled_again(
    model, package, tmp_path, caplog
):
    path = tmp_path / "tower-aoti-fp32.pt2"
    path.write_bytes(package[0].read_bytes()[:4096])  # a torn write
    with caplog.at_level(logging.WARNING, logger="emoclip.inference.tower"):
        with pytest.raises(ArtefactPending, match="not compiled yet"):
            _compiled(model, path, build=False)
    assert any("unreadable" in r.getMessage() for r in caplog.records) and not path.exists()
    path.write_bytes(b"not a package")
    fn, seconds = _compiled(model, path, build=True)
    assert seconds > 0 and path.stat().st_size > 4096
    x = parity_images(model, 2)
    with torch.inference_mode():
        assert float((fn(x) - model.encode_image(x)).abs().max()) <= autotune.FP32_MAX_ABS


def test_the_package_is_kept_under_the_choices_key(model, tmp_path, monkeypatch):
    layout = Layout(4, 1, 1)
    cache = ChoiceCache(tmp_path)
    key = layout_key(model, "auto", layout, CPU)
    here = artefact_path(cache.path(key), "aoti-bf16")
    assert here.parent == tmp_path and here.name.startswith(cache.path(key).stem)
    assert Compiling(cache.path(key), 1, 1).path("aoti-bf16") == here
    assert artefact_path(cache.path(key), "aoti-fp32") != here
    other_cpu = CpuInfo("Test CPU", (*CPU.flags, "amx_bf16"))
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    for changed in (
        layout_key(model, "auto", layout, CPU),  # another torch
        layout_key(model, "auto", Layout(4, 1, 1), other_cpu),
    ):
        assert artefact_path(cache.path(changed), "aoti-bf16") != here
    monkeypatch.undo()
    with torch.no_grad():
        model.backbone.visual.proj.mul_(2.0)  # weights edited in place: a new digest
    try:
        edited = layout_key(model, "auto", layout, CPU)
    finally:
        with torch.no_grad():
            model.backbone.visual.proj.div_(2.0)  # exact: the module's model is shared
    assert artefact_path(cache.path(edited), "aoti-bf16") != here


def test_compiled_candidates_are_opt_in_and_say_so(model, tmp_path):
    choice = choose_tower(model, "auto", batch=4, cache_dir=tmp_path, cpu=CPU, min_gflops=0)
    for name in ("aoti-bf16", "aoti-fp32"):
        assert "opt-in" in choice.failures[name] and name not in choice.frames_per_s
    assert not list(tmp_path.glob("*.pt2"))


@needs_toolchain
def test_a_pending_package_is_compiled_measured_and_kept(model, tmp_path):
    """Without compile_now the compiled candidate is left pending (the choice is made at once);
    `challenge` compiles, checks and times it against the serving tower and keeps the result, so
    the next start uses the kept choice without timing and without compiling."""
    kw = dict(batch=4, cache_dir=tmp_path, cpu=CPU, min_gflops=0, compiled=True)
    layout = Layout(4, 1, None)  # choose_tower's defaults: 1 worker, small work's threads chosen
    first = choose_tower(model, "bf16", **kw)
    assert first.pending == ["aoti-bf16"] and first.failures["aoti-bf16"].startswith("pending")
    assert first.name != "aoti-bf16" and not list(tmp_path.glob("*.pt2"))
    new = challenge(
        model,
        first,
        "aoti-bf16",
        precision="bf16",
        layout=layout,
        cache_dir=tmp_path,
        cpu=CPU,
    )
    assert list(tmp_path.glob("*-aoti-bf16.pt2"))
    kept = ChoiceCache(tmp_path).load(layout_key(model, "bf16", layout, CPU))
    assert kept is not None and "aoti-bf16" in kept["frames_per_s"]
    assert kept["choice"] == (new.name if new is not None else first.name)
    assert not first.pending
    warm = choose_tower(model, "bf16", **kw)
    assert warm.source == "cache" and warm.name == kept["choice"] and not warm.pending


@needs_toolchain
def test_a_forced_fp32_overrides_a_compiled_choice(model, tmp_path, monkeypatch):
    monkeypatch.setattr(autotune, "time_call", lambda fn: (fn(), 1.0)[1])  # all equally fast
    kw = dict(batch=4, cache_dir=tmp_path, cpu=CPU, min_gflops=0, compiled=True)
    chosen = choose_tower(model, "bf16", compile_now=True, **kw)
    assert "aoti-bf16" in chosen.frames_per_s  # compiled now, measured with the others
    forced = choose_tower(model, "fp32", **kw)
    assert forced.name == "plain-fp32" and forced.source == "forced" and forced.fn is None


@needs_toolchain
def test_the_predictor_compiles_in_the_background_while_another_tower_serves(tmp_path):
    torch.manual_seed(0)
    model = emoclip.load_model("test-emoclip-tiny")
    p = EmotionPredictor(
        model, precision="bf16", tower_cache=str(tmp_path), compile_tower=True, batch_size=4
    )
    serving = p.parts.encoder.precision_info()
    assert serving["implementation"] in {c.name for c in autotune.CANDIDATES}
    assert p.parts.encoder.wait_compiled(600)
    info = p.parts.encoder.precision_info()
    assert "aoti-bf16" in info["frames_per_s"] and "pending" not in str(info["failures"])
    x = parity_images(model, 3)
    with torch.inference_mode():
        out = p.parts.encoder.encode_tensor(x)
        ref = model.encode_image(x).float()
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=-1).min()
    assert cos >= autotune.BF16_MIN_COSINE
    assert BY_NAME[info["implementation"]].precision == "bf16"
