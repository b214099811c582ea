"""P10, Ray's overhead on one machine: `emoclip batch` (local Ray started and stopped by the
command) over `emoclip predict` on the same short clips, both fresh commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .clips import short_clips
from .model import weights_file
from .timing import child_env, log


def bench_p10(model_name: str, folder: Path, n: int, workdir: Path) -> dict[str, Any]:
    """Seconds of `emoclip batch` over `emoclip predict` on `n` short clips cached in `folder`
    (both commands run in `workdir`, with no Ray cluster to join).

    The model is loaded from a checkpoint file, as a real model loads (`model.weights_file`: a
    random-weight test model saved once with seed 0), and each command first runs once untimed on
    two clips: the image tower is chosen once per machine and model (`inference.autotune`, kept
    on disk), and batch's one-thread actors choose at their own layout, so a cold first run would
    time that one-off measurement (15-30 s) rather than the analysis.
    """
    clips = short_clips(folder, n)
    env = child_env()
    env.pop("RAY_ADDRESS", None)
    base = [sys.executable, "-m", "emoclip"]
    model = weights_file(model_name, folder)
    out = workdir / "p10-results"

    def command(name: str, inputs: list[Path]) -> list[str]:
        if name == "predict":
            return base + [
                "predict", *map(str, inputs), "--model", model, "--quiet",
                "--json", str(workdir / "p10-predict.json"),
            ]  # fmt: skip
        return base + ["batch", *map(str, inputs), "--out", str(out), "--model", model, "--quiet"]

    runs, warm = {}, {}
    for name in ("predict", "batch"):
        for timed, inputs in ((False, clips[:2]), (True, clips)):
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            proc = subprocess.run(
                command(name, inputs), capture_output=True, text=True, env=env, cwd=workdir
            )
            (runs if timed else warm)[name] = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"P10 {name} failed:\n{proc.stderr[-3000:]}")
    res = {
        "P10": runs["batch"] / runs["predict"],
        "clips": n,
        "predict_s": runs["predict"],
        "batch_s": runs["batch"],
        "predict_clips_per_s": n / runs["predict"],
        "batch_clips_per_s": n / runs["batch"],
        "warm_up_s": warm,
    }
    log(
        f"  {n} clips: predict {runs['predict']:.1f} s, batch {runs['batch']:.1f} s (both fresh commands, after one untimed run each)"
    )
    shutil.rmtree(out, ignore_errors=True)
    return res
