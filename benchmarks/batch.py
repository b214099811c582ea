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
from .timing import child_env, log


def bench_p10(model_name: str, folder: Path, n: int, workdir: Path) -> dict[str, Any]:
    """Seconds of `emoclip batch` over `emoclip predict` on `n` short clips cached in `folder`
    (both commands run in `workdir`, with no Ray cluster to join)."""
    clips = short_clips(folder, n)
    env = child_env()
    env.pop("RAY_ADDRESS", None)
    base = [sys.executable, "-m", "emoclip"]
    out = workdir / "p10-results"
    shutil.rmtree(out, ignore_errors=True)
    runs = {}
    for name, cmd in (
        (
            "predict",
            base
            + [
                "predict",
                *map(str, clips),
                "--model",
                model_name,
                "--quiet",
                "--json",
                str(workdir / "p10-predict.json"),
            ],
        ),
        (
            "batch",
            base + ["batch", *map(str, clips), "--out", str(out), "--model", model_name, "--quiet"],
        ),
    ):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
        runs[name] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"P10 {name} failed:\n{proc.stderr[-3000:]}")
    res = {
        "P10": runs["batch"] / runs["predict"],
        "clips": n,
        "predict_s": runs["predict"],
        "batch_s": runs["batch"],
        "predict_clips_per_s": n / runs["predict"],
        "batch_clips_per_s": n / runs["batch"],
    }
    log(
        f"  {n} clips: predict {runs['predict']:.1f} s, batch {runs['batch']:.1f} s (both fresh commands)"
    )
    shutil.rmtree(out, ignore_errors=True)
    return res
