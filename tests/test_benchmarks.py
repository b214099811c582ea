"""Smoke test of benchmarks/run.py: the whole machinery on the tiny model and tiny clips.

Checks the JSON's keys and that every figure is a sane number; no timing assertions (the figures
of a tiny random model on a shared machine mean nothing).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_benchmark_runs_end_to_end_on_the_tiny_model(repo_root, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(repo_root / "benchmarks" / "run.py"), "--quick", "--model", "test-emoclip-tiny",
           "--repeats", "1", "--clip-seconds", "3", "--clip-size", "320x240", "--long-seconds", "5",
           "--p7-seconds", "4", "--p7-size", "320x240", "--p8-points", "150", "--p8-methods", "tsne",
           "--p6-frames", "4", "--no-app", "--cache-dir", str(tmp_path / "videos"), "--json", str(out)]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(repo_root)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for key in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9"):
        assert f"{key} = " in proc.stdout  # each figure is printed

    data = json.loads(out.read_text())
    keys = [f"P{i}" for i in range(1, 10)]
    assert all(isinstance(data[k], float) and math.isfinite(data[k]) and data[k] > 0 for k in keys), data
    assert data["precision"] == "fp32"  # "auto" keeps the tiny tower in fp32
    assert 0 < data["P1"] <= 2.0  # a fraction of the GEMM peak (tiny towers are far below it)
    assert data["P2"] >= 0.2 and data["P3"] > 0.2 and data["P5"] >= 1.0
    assert data["P4"] < 10_000 and data["P6"] > 0.1
    assert 0.05 < data["P7"] < 24  # GB, of a real process
    details = data["details"]
    assert details["P1"]["gflop_per_frame"] > 0 and details["P1"]["fp32"]["gemm_peak_gflops"] > 0
    assert details["P2"]["sampled_frames"] == details["P2"]["crops"] > 0
    assert details["P5"]["windows"] >= 2 and details["P5"]["naive_frame_encodings"] > details["P5"]["crops"]
    assert details["P6"]["handler"].startswith("predictor path")
    assert details["P7"]["sampled_frames"] > 0 and details["P8"]["tsne"]["best_s"] > 0
    # the group photo: five real faces found end to end, in the library and by the CLI
    assert details["P9"]["faces"] == 5 and details["P9"]["cli_faces"] == 5 and details["P9"]["cli_cold_s"] > 0
    assert data["machine"]["logical_cpus"] >= 1 and data["targets"]["P1"] == ">= 0.85"
