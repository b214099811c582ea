"""P9, a photo: a 1080p group photo of five faces with EXIF orientation analysed end to end (warm
median), and the CLI's cold start on it in a new process."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .timing import child_env, log


def bench_p9(
    model_name: str, predictor, path: Path, repeats: int, threads: int | None
) -> dict[str, Any]:
    """Warm end-to-end analysis of the group photo (decode, EXIF, detection, crops, encoding,
    scoring), median of `repeats` after one warm-up; and the CLI's cold start on it. `predictor`
    keeps no encoded media (`benchmarks.model.make_predictor`): every call is analysed."""
    classes = predictor.default_classes()

    def once():
        return predictor.predict_image(path, classes)

    pred = once()  # warm-up: detector, tiles, text embeddings
    times, stages = [], []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        pred = once()
        times.append(time.perf_counter() - t0)
        stages.append(pred.timings)
    res: dict[str, Any] = {
        "median_s": statistics.median(times),
        "best_s": min(times),
        "runs_s": times,
        "faces": len(pred.tracks),
        "face_widths": [round(t.box[2]) for t in pred.tracks],
        "image": f"{pred.video['width']}x{pred.video['height']} (EXIF orientation {pred.video['exif_orientation']})",
        "stages_median_s": {
            k: statistics.median(s.get(k, 0.0) for s in stages)
            for k in ("decode", "detect", "encode", "temporal", "score", "total")
        },
    }
    res["P9"] = res["median_s"]
    cmd = [sys.executable, "-m", "emoclip", "predict", str(path), "--model", model_name, "--quiet"]
    env = child_env(**({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    res["cli_cold_s"] = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"P9 CLI failed:\n{out.stderr[-3000:]}")
    res["cli_faces"] = sum(line.startswith("  face ") for line in out.stdout.splitlines())
    log(
        f"  {res['image']}: {res['faces']} faces, warm median {res['median_s']:.3f} s "
        f"(decode {res['stages_median_s']['decode']:.3f}, detect {res['stages_median_s']['detect']:.3f}, "
        f"encode {res['stages_median_s']['encode']:.3f}); CLI cold start {res['cli_cold_s']:.1f} s"
    )
    return res
