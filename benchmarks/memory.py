"""Resident memory of a model load and of a predictor's first use, each in a fresh process.

    python -m benchmarks.memory                      # test-emoclip-vitb32 from a checkpoint file
    python -m benchmarks.memory --model test-emoclip-vitb32   # random initialisation, no file

(from the repository root).

By default the paper-shape test model (ViT-B/32 + the 2-block temporal transformer, random
weights) is saved once as a checkpoint in the benchmark cache and loaded from that file, the way
``emoclip-vitb32`` loads in real use. Each stage is measured in a child process from
``/proc/self/status``: ``VmRSS`` (resident now) and ``VmHWM`` (peak so far), in MB. The first use
is what the app does before analysing anything: one frame encoded (precision chosen, the bf16
tower built and checked) and one window pooled (the folded temporal model built). The page cache
is warmed once before the children run, so every child reads the file from the same warm cache.

Prints one JSON line per child. For an A/B of two code versions, run it twice with
``PYTHONPATH=<checkout>``: the children import that checkout's `emoclip`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _vm() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = round(int(line.split()[1]) / 1024, 1)  # kB -> MB
    return out


def child(model_arg: str, threads: int | None) -> None:
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    import emoclip
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.settings import AnalysisSettings, ModelLocations

    stages = {"imported": _vm()}
    t0 = time.perf_counter()
    model = emoclip.load_model(model_arg, locations=ModelLocations.from_env())
    load_s = time.perf_counter() - t0
    stages["loaded"] = _vm()
    predictor = EmotionPredictor(model, AnalysisSettings.from_env())  # EMOCLIP_RELEASE_WEIGHTS
    t0 = time.perf_counter()
    size = model.image_size
    predictor.parts.encoder.encode(np.zeros((1, size, size, 3), np.uint8))
    predictor.parts.pooler.pool(torch.zeros(1, model.config.preprocess.num_frames, model.embed_dim))
    first_use_s = time.perf_counter() - t0
    stages["first_use"] = _vm()
    crops = np.random.default_rng(0).integers(0, 256, (32, size, size, 3), dtype=np.uint8)
    emb = predictor.parts.encoder.encode(crops)
    pooled = predictor.parts.pooler.pool(emb[None])
    stages["encoded_32"] = _vm()
    print(
        json.dumps(
            {
                "model": model_arg,
                "precision": predictor.parts.encoder.precision,
                "load_s": round(load_s, 2),
                "first_use_s": round(first_use_s, 2),
                "stages_mb": stages,
                "pooled_head": [round(float(v), 5) for v in pooled[0, :4]],
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--model",
        help="model name or weights file (default: the paper-shape test model from a file)",
    )
    ap.add_argument(
        "--cache-dir",
        help="where the test checkpoint is kept (default $EMOCLIP_BENCH_CACHE or "
        "~/.cache/emoclip-bench)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="children run (one JSON line each)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.threads)
        return 0
    model_arg = args.model
    if model_arg is None:  # imported here: a child imports nothing before its first stage
        from .clips import cache_dir
        from .model import weights_file

        model_arg = weights_file("test-emoclip-vitb32", cache_dir(args.cache_dir))
    if Path(model_arg).is_file():
        with open(model_arg, "rb") as fh:  # warm the page cache once: every child reads it warm
            while fh.read(1 << 24):
                pass
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", model_arg]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    # The child imports `emoclip` from the caller's PYTHONPATH (the code version under test) and,
    # after it, `benchmarks` from this checkout; run from an empty folder, so that no checkout in
    # the working directory comes first.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([*paths, str(REPO)])}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="emoclip-memory-") as empty:
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=empty)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        print(out.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
