"""The image tower chosen by measurement, per machine (issue #22): every candidate checked and
timed, the fastest passing kept, the choice remembered on disk under a key that changes with the
weights, torch, open_clip, the CPU; failures reported, never silent."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import emoclip
import emoclip.inference.autotune as autotune
from emoclip.inference.autotune import CANDIDATES, choose_tower
from emoclip.inference.tower_cache import ChoiceCache, CpuInfo, default_cache_dir, read_cpu_info

CPU = CpuInfo("Test CPU", ("avx2", "avx512_bf16", "avx512f", "fma"))
NO_BF16 = CpuInfo("Test CPU", ("avx2", "avx512f", "fma"))


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return emoclip.load_model("test-emoclip-tiny")


@pytest.fixture()
def timings(monkeypatch) -> list[float]:
    """Every timed call of the measurement (`autotune.time_call`), recorded."""
    calls: list[float] = []
    real = autotune.time_call

    def counted(fn):
        calls.append(real(fn))
        return calls[-1]

    monkeypatch.setattr(autotune, "time_call", counted)
    return calls


def _choose(model, cache_dir, precision="auto", cpu=CPU, **kw):
    """The choice at a small layout, measuring even the tiny test tower (min_gflops=0)."""
    return choose_tower(
        model, precision, batch=4, workers=1, cache_dir=cache_dir, cpu=cpu, min_gflops=0, **kw
    )


def test_every_candidate_is_measured_checked_and_the_fastest_kept(model, tmp_path, timings):
    choice = _choose(model, tmp_path)
    assert choice.source == "measured" and not choice.refused
    measured = choice.frames_per_s
    assert set(measured) | set(choice.failures) == {c.name for c in CANDIDATES}
    assert choice.name == max(measured, key=measured.get)
    assert timings and len(timings) <= 2 * len(measured)
    assert choice.cpu == "Test CPU" and "avx512_bf16" in choice.isa
    report = choice.report()
    assert choice.name in report and "Test CPU" in report and str(tmp_path) in report
    for name in measured:
        assert name in report
    if choice.precision == "bf16":
        assert choice.parity >= autotune.BF16_MIN_COSINE
    elif choice.name != "plain-fp32":
        assert choice.parity <= autotune.FP32_MAX_ABS


def test_a_warm_cache_is_used_without_timing(model, tmp_path, timings):
    first = _choose(model, tmp_path)
    n = len(timings)
    again = _choose(model, tmp_path)
    assert len(timings) == n  # nothing timed
    assert again.source == "cache" and again.name == first.name
    assert again.frames_per_s == first.frames_per_s and again.cache_file == first.cache_file
    x = torch.randn(2, 3, model.image_size, model.image_size)
    with torch.inference_mode():
        ref = model.encode_image(x)
        out = ref if again.fn is None else again.fn(x)
    assert torch.nn.functional.cosine_similarity(out, ref).min() >= autotune.BF16_MIN_COSINE


def test_the_key_changes_with_weights_torch_and_cpu_flags(model, tmp_path, timings, monkeypatch):
    _choose(model, tmp_path)
    n = len(timings)
    other_cpu = CpuInfo("Test CPU", (*CPU.flags, "amx_bf16", "amx_tile"))
    assert _choose(model, tmp_path, cpu=other_cpu).source == "measured"
    assert len(timings) > n
    n = len(timings)
    with torch.no_grad():
        model.backbone.visual.proj.mul_(1.5)
    assert _choose(model, tmp_path).source == "measured" and len(timings) > n
    n = len(timings)
    monkeypatch.setattr(torch, "__version__", torch.__version__ + ".changed")
    assert _choose(model, tmp_path).source == "measured" and len(timings) > n
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_a_corrupt_cache_file_is_ignored_with_a_warning_and_rebuilt(model, tmp_path, caplog):
    first = _choose(model, tmp_path)
    path = tmp_path / first.cache_file.rsplit("/", 1)[-1]
    path.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="emoclip.inference.tower"):
        again = _choose(model, tmp_path)
    assert again.source == "measured"
    assert any("corrupt" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    assert json.loads(path.read_text(encoding="utf-8"))["record"]["choice"] == again.name
    path.write_text(json.dumps({"key": {}, "record": {"choice": "x"}}), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="emoclip.inference.tower"):
        assert _choose(model, tmp_path).source == "measured"


def test_forced_precision_overrides_the_cached_choice(model, tmp_path, timings):
    _choose(model, tmp_path)
    n = len(timings)
    fp32 = _choose(model, tmp_path, precision="fp32")
    assert (fp32.name, fp32.fn, fp32.source) == ("plain-fp32", None, "forced")
    assert len(timings) == n  # fp32 is the plain tower: nothing measured
    bf16 = _choose(model, tmp_path, precision="bf16", cpu=NO_BF16)  # forced even without the ISA
    assert bf16.precision == "bf16" and bf16.parity >= autotune.BF16_MIN_COSINE
    assert set(bf16.frames_per_s) <= {c.name for c in CANDIDATES if c.precision == "bf16"}


def test_auto_without_native_bf16_measures_fp32_towers_only(model, tmp_path):
    choice = _choose(model, tmp_path, cpu=NO_BF16)
    assert choice.precision == "fp32"
    assert all(c.precision == "fp32" for c in CANDIDATES if c.name in choice.frames_per_s)
    assert "no native bf16" in choice.failures["fast-bf16-onednn"]


def test_a_candidate_that_fails_is_reported_and_logged(model, tmp_path, monkeypatch, caplog):
    real = autotune.build_candidate

    def failing(model, candidate, batch, on_block=None, compiling=None):
        if candidate.name == "fast-fp32-public":
            raise TypeError("a coding error in the fast tower")
        return real(model, candidate, batch, on_block, compiling)

    monkeypatch.setattr(autotune, "build_candidate", failing)
    with caplog.at_level(logging.WARNING, logger="emoclip.inference.tower"):
        choice = _choose(model, tmp_path)
    why = choice.failures["fast-fp32-public"]
    assert why == "could not be built: TypeError: a coding error in the fast tower"
    assert "fast-fp32-public" not in choice.frames_per_s and why in choice.report()
    assert any("a coding error" in r.getMessage() for r in caplog.records)


def test_the_measurement_budget_leaves_candidates_unmeasured_and_says_so(model, tmp_path):
    choice = _choose(model, tmp_path, budget_s=0.0)
    # the first is always measured, and so is the reference (plain fp32, last)
    assert list(choice.frames_per_s) == [CANDIDATES[0].name, "plain-fp32"]
    compiled = {c.name for c in CANDIDATES if c.backend == "aoti"}  # opt-in, off here
    assert all("budget" in why for name, why in choice.failures.items() if name not in compiled)
    assert all("opt-in" in choice.failures[name] for name in compiled)
    assert choice.cache_file is None and not list(
        tmp_path.glob("*.json")
    )  # measured again next time


def test_this_machines_cpu_is_read():
    cpu = read_cpu_info()
    assert cpu.model
    if cpu.flags:
        assert cpu.native_bf16 == bool({"avx512_bf16", "amx_bf16"} & set(cpu.flags))
    assert ChoiceCache(default_cache_dir()).folder.parts[-3:] == (".cache", "emoclip", "tower")


def test_a_checkpoint_is_keyed_by_its_recorded_sha256_until_edited(model, tmp_path):
    from emoclip.inference.tower_cache import model_weights_sha256, weights_sha256
    from emoclip.weights.files import file_sha256, save_checkpoint

    path = save_checkpoint(model.state_dict(), model.config, tmp_path / "m.safetensors")
    loaded = emoclip.load_model(path)
    visual = loaded.backbone.visual
    assert model_weights_sha256(visual, loaded.source) == f"file:{file_sha256(path)}"
    with torch.no_grad():
        visual.proj.mul_(2.0)  # edited in place: the file no longer describes the tower
    assert model_weights_sha256(visual, loaded.source) == weights_sha256(visual)
    assert weights_sha256(visual) != weights_sha256(model.backbone.visual)


def test_doctor_shows_the_cpu_the_backends_and_the_choice(capsys):
    from emoclip.cli import main

    assert main(["doctor", "--model", "test-emoclip-tiny"]) == 0
    out = capsys.readouterr().out
    cpu = read_cpu_info()
    assert f"CPU: {cpu.model}" in out and "linear backend public: available" in out
    assert "linear backend onednn: " in out and "image tower: plain-fp32 (fp32)" in out
    assert main(["doctor", "--model", "test-emoclip-tiny", "--precision", "fp32", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tower"]["implementation"] == "plain-fp32" and info["cpu"] == cpu.model
