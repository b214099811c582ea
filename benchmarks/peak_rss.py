"""P7, peak memory: the peak RSS (``VmHWM``) of a fresh process analysing a long 1080p video
(`bench_p7` starts it; `p7_child` is what runs inside)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .model import load, make_predictor
from .timing import log, run_child
from .work import WORK


def bench_p7(model_name: str, path: Path, threads: int | None) -> dict[str, Any]:
    """Peak RSS of a fresh process (`p7_child`) loading `model_name` and analysing `path`."""
    flags = ["--p7-child", str(path), "--model", model_name]
    if threads:
        flags += ["--threads", str(threads)]
    t0 = time.perf_counter()
    res = run_child(flags, "P7 child")
    res["wall_s"] = time.perf_counter() - t0
    res["P7"] = res["peak_rss_gb"]
    log(
        f"  {res['video']}: peak RSS {res['peak_rss_gb']:.2f} GB (after model load {res['rss_after_load_gb']:.2f} GB), "
        f"{res['sampled_frames']} sampled frames, {res['windows']} windows, analysis {res['analysis_s']:.0f} s"
    )
    return res


def _vm(field: str) -> float:
    """GB of one ``/proc/self/status`` field (``VmHWM``: the peak RSS so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20  # kB -> GB
    return float("nan")


def p7_child(path: str, model_name: str) -> None:
    """In the fresh process: load, choose the precision, analyse `path` with the work counted, and
    print the figures as one JSON line."""
    import resource

    model = load(model_name)
    predictor = make_predictor(model)
    predictor.parts.encoder.encode(
        np.zeros((1, model.image_size, model.image_size, 3), np.uint8)
    )  # choose precision
    after_load = _vm("VmHWM")
    before = WORK.install().snapshot()
    t0 = time.perf_counter()
    pred = predictor.predict(path)
    elapsed = time.perf_counter() - t0
    work = WORK.since(before)
    peak = _vm("VmHWM")
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    predictor.close()
    info = pred.video
    print(
        json.dumps(
            {
                "video": f"{info['width']}x{info['height']} {info['duration']:.0f} s at {info['fps']:.0f} fps",
                "peak_rss_gb": peak,
                "rss_after_load_gb": after_load,
                "analysis_s": elapsed,
                # getrusage's ru_maxrss survives execve: it starts from the benchmark parent's RSS at fork
                "ru_maxrss_gb_includes_parent_at_fork": ru,
                "sampled_frames": pred.faces.sampled_frames,
                "windows": len(pred.timeline),
                "tracks": len(pred.tracks),
                "evidence_moments": len(pred.evidence.moments) if pred.evidence else 0,
                "timings_s": {k: round(v, 2) for k, v in pred.timings.items()},
                "precision": predictor.parts.encoder.precision,
                "tower": predictor.parts.encoder.precision_info()["implementation"],
                "tower_source": predictor.parts.encoder.precision_info()[
                    "source"
                ],  # measured here, or cached
                "work": {"analysis": work},
            }
        )
    )
