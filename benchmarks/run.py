"""EmoCLIP performance benchmark (issues #5, #10, #13): P1...P12 on ViT-B/32-size random weights and generated clips.

    HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False .venv/bin/python -m benchmarks.run [--quick] [--json OUT]

(from the repository root; ``python -m benchmarks`` is the same). This module is the command line:
the figures' targets and verdicts, the run's order and its JSON; each figure is measured by its own
module of the `benchmarks` package (encoder: P1, analysis: P2-P5, live: P6, peak_rss: P7,
projection: P8 and P11, photo: P9, batch: P10, evidence: P12).

Every figure is a ratio or a best-of-N measured inside this one run (see benchmarks/README.md):

P1  encoder efficiency: image-tower FLOP/s / this machine's best GEMM FLOP/s at the same precision
    (fp32 and bf16 both reported; P1 is the precision the predictor chose, as the app uses it).
P2  end-to-end analysis of a 10 s 640x480 30 fps clip / pure encoding of the same sampled crops.
P3  speed-up of that analysis over a naive frame-by-frame pipeline modelled on the authors' data
    loading (every frame decoded into PIL, whole clip in memory), which also re-encodes each window's
    frames and every class text per call, in fp32; both timed the same way (same warm-up, repeats,
    reused detector, alternating runs).
P4  milliseconds to re-score the analysed video after one class description is edited.
P5  a 60 s clip's timeline (encode the sampled crops once + pool every window) / encoding them once.
P6  webcam handler throughput at 640x480 (the app's `live_step`, else the same predictor path).
P6e the live tab end to end: the app served, Chromium's fake camera (640x480, 30 fps y4m made with
    ffmpeg) streaming into it; processed frames/s as the page counts them, and the median latency
    from capture to label the page measures (details; skipped with --no-app or without Chromium).
P7  peak RSS (GB, VmHWM) of a subprocess analysing a generated 10-minute 1080p video.
P8  seconds for UMAP and t-SNE on 2,000 embeddings, warm (P8 is the larger), beside the first
    projection a user waits for: a fresh process, the method's imports and JIT included.
P9  seconds (warm median) to analyse a 1080p group photo of five faces stored with EXIF
    orientation 6, end to end (decode, EXIF, detection, crops, encoding, scoring); the CLI's cold
    start on the same photo (a new process) is reported beside it.
P10  `emoclip batch` (local Ray started and stopped by the command) / `emoclip predict` on the same
    short clips (200 in the full run), both fresh commands: Ray's overhead on one machine.
P11 seconds for the latent explorer to load a results folder of 50,000 Parquet embeddings, project
    them all with PCA and with UMAP (fitted on a sample, the rest placed by neighbours; import and
    JIT warm-up reported separately).
P12 the evidence of a clip's answer (key moments re-pooled from the cached frame embeddings,
    matched words, margin) / the whole analysis of the 10 s clip; the evidence's counted work is
    no frame decoded, no crop or text encoded, one sequence pooled per moment.

Every figure also reports the work it counted (frames decoded, crops encoded, texts encoded, windows
pooled; `WorkCounter`), which tests/test_benchmarks.py checks: counts do not depend on the machine.

Generated videos are cached outside git (``$EMOCLIP_BENCH_CACHE``, default ~/.cache/emoclip-bench).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import bench_p2, bench_p3, bench_p4, bench_p5
from .batch import bench_p10
from .clips import cache_dir, make_clip, make_group_photo, make_long_clip
from .encoder import bench_p1
from .evidence import bench_p12
from .live import bench_p6
from .live_browser import bench_p6e
from .machine import busy_processes, loadavg, machine_info
from .model import load, make_predictor, weights_file
from .peak_rss import bench_p7, p7_child
from .photo import bench_p9
from .projection import bench_p8, bench_p11, p8_child, p11_child
from .timing import log
from .work import WORK

TARGETS = {
    "P1": (">=", 0.85),
    "P2": ("<=", 1.30),
    "P3": (">=", 3.0),
    "P4": ("<=", 50.0),
    "P5": ("<=", 1.2),
    "P6": (">=", 12.0),
    "P6e": (">=", 8.0),
    "P7": ("<=", 2.5),
    "P8": ("<=", 10.0),
    "P9": ("<=", 0.3),
    "P10": ("<=", 1.15),
    "P11": ("<=", 60.0),
    "P12": ("<=", 0.10),
}
UNITS = {
    "P1": "",
    "P2": "x",
    "P3": "x",
    "P4": "ms",
    "P5": "x",
    "P6": "fps",
    "P6e": "fps",
    "P7": "GB",
    "P8": "s",
    "P9": "s",
    "P10": "x",
    "P11": "s",
    "P12": "x",
}


def verdict(key: str, value: float) -> str:
    """``"met (target >= 0.85)"`` or ``"MISSED (...)"`` for figure `key` at `value`."""
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return f"{'met' if ok else 'MISSED'} (target {op} {target:g})"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.run`` (the ``--pN-child`` flags are internal: a
    figure measured in a fresh process runs this module again with one of them)."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick", action="store_true", help="CI-sized run (fewer repeats), under 10 minutes"
    )
    ap.add_argument(
        "--json", metavar="OUT", help="write the figures (P1...P9 + details) to this JSON file"
    )
    ap.add_argument(
        "--model",
        default="test-emoclip-vitb32",
        help="model name (default: ViT-B/32 shapes, random weights)",
    )
    ap.add_argument(
        "--cache-dir",
        help="where generated videos are kept (default $EMOCLIP_BENCH_CACHE or ~/.cache/emoclip-bench)",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        help="timed repeats per measurement (best-of-N); default 5, --quick 3",
    )
    ap.add_argument(
        "--threads",
        type=int,
        help="torch.set_num_threads (default: torch's own, the physical cores)",
    )
    ap.add_argument(
        "--only", help="comma-separated subset, e.g. P2,P4 (the JSON then has only those)"
    )
    ap.add_argument("--clip-seconds", type=float, default=10.0)
    ap.add_argument("--clip-size", default="640x480", help="WxH of the P2-P4 and P6 clips")
    ap.add_argument("--long-seconds", type=float, default=60.0, help="P5 clip length")
    ap.add_argument(
        "--p7-seconds",
        type=float,
        default=600.0,
        help="P7 video length (default 600, the issue's 10 minutes, also with --quick)",
    )
    ap.add_argument("--p7-size", default="1920x1080")
    ap.add_argument(
        "--p7-random-init",
        action="store_true",
        help="P7: build a test model with random weights in the child (before 2026-12: the only "
        "way) instead of loading it from a checkpoint file as a real model loads",
    )
    ap.add_argument("--p8-points", type=int, default=2000)
    ap.add_argument("--p8-methods", default="umap,tsne")
    ap.add_argument("--p6-frames", type=int, help="webcam frames timed (default 60, --quick 30)")
    ap.add_argument(
        "--no-app",
        action="store_true",
        help="P6: skip importing the app package, time the predictor path",
    )
    ap.add_argument("--p10-clips", type=int, help="short clips of P10 (default 200, --quick 40)")
    ap.add_argument("--p11-points", type=int, default=50_000)
    ap.add_argument("--p7-child", help=argparse.SUPPRESS)
    ap.add_argument("--p11-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--p8-child", type=int, help=argparse.SUPPRESS)
    return ap


def _make_media(args, folder: Path, wanted: set[str]) -> dict[str, Any]:
    """The generated media the figures asked for need (cached in ``folder``): the clip, the 60 s
    clip (P5), the long 1080p video (P7) and the group photo (P9); None for the others."""
    w, h = (int(v) for v in args.clip_size.lower().split("x"))
    pw, ph = (int(v) for v in args.p7_size.lower().split("x"))
    t0 = time.perf_counter()
    media = {
        "clip": make_clip(folder, args.clip_seconds, (h, w)),
        "long": make_clip(folder, args.long_seconds, (h, w)) if "P5" in wanted else None,
        "p7": make_long_clip(folder, args.p7_seconds, (ph, pw)) if "P7" in wanted else None,
        "photo": make_group_photo(folder) if "P9" in wanted else None,
    }
    log(f"videos ready in {time.perf_counter() - t0:.1f} s ({folder})")
    return media


def _steps(args, model, predictor, media: dict[str, Any], folder: Path, methods, repeats: int):
    """(key, title, run) of every figure, in the order they run; ``media`` holds the generated
    clip, long clip, P7 video and group photo."""
    clip, long_clip, p7_video, photo = (media[k] for k in ("clip", "long", "p7", "photo"))
    return [
        (
            "P1",
            "encoder efficiency (tower FLOP/s / GEMM FLOP/s)",
            lambda: bench_p1(model, predictor, repeats),
        ),
        ("P2", "10 s 640x480 analysis / pure encoding", lambda: bench_p2(predictor, clip, repeats)),
        (
            "P3",
            "speed-up over a naive frame-by-frame pipeline modelled on the authors' data loading",
            lambda: bench_p3(model, predictor, clip, repeats),
        ),
        (
            "P4",
            "re-score after one edited description (ms)",
            lambda: bench_p4(predictor, clip, repeats),
        ),
        (
            "P5",
            "60 s timeline / encoding its frames once",
            lambda: bench_p5(predictor, long_clip, repeats),
        ),
        (
            "P6",
            "webcam handler frames/s at 640x480",
            lambda: bench_p6(model, args.p6_frames or (30 if args.quick else 60), not args.no_app),
        ),
        (
            "P6e",
            "live tab end to end in Chromium with a fake camera, processed frames/s",
            lambda: bench_p6e(model, 6.0 if args.quick else 12.0),
        ),
        (
            "P7",
            "peak RSS (GB) analysing a 10-minute 1080p video",
            lambda: bench_p7(
                args.model if args.p7_random_init else weights_file(args.model, folder),
                p7_video,
                args.threads,
            ),
        ),
        (
            "P8",
            "max(UMAP, t-SNE) seconds on 2,000 embeddings, warm (the first projection beside it)",
            lambda: bench_p8(
                args.p8_points, methods, max(1, repeats // 2 if args.quick else repeats // 2 + 1)
            ),
        ),
        (
            "P9",
            "1080p group photo of five faces, end to end, warm median (s)",
            lambda: bench_p9(args.model, predictor, photo, repeats, args.threads),
        ),
        (
            "P10",
            "emoclip batch / emoclip predict on the same short clips",
            lambda: bench_p10(
                args.model, folder, args.p10_clips or (40 if args.quick else 200), folder
            ),
        ),
        (
            "P11",
            f"explorer load + PCA + UMAP seconds on {args.p11_points:,} embeddings",
            lambda: bench_p11(args.p11_points),
        ),
        (
            "P12",
            "evidence of a 10 s clip's answer / its whole analysis",
            lambda: bench_p12(predictor, clip, repeats),
        ),
    ]


def _report(
    args, results, details, predictor, media, run: dict[str, Any], repeats: int
) -> dict[str, Any]:
    """The JSON report: the figures, then how, where and under what load they were measured; logs
    the summary line. ``run`` holds machine, load_start, busy, startup and started."""
    machine, load_start, busy = run["machine"], run["load_start"], run["busy"]
    startup, started = run["startup"], run["started"]
    clip, long_clip, p7_video, photo = (media[k] for k in ("clip", "long", "p7", "photo"))
    out = dict(results)
    out.update(
        {
            "precision": predictor.parts.encoder.precision,
            "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
            "quick": args.quick,
            "repeats": repeats,
            "model": args.model,
            "machine": machine,
            "load_average": {"start": load_start, "end": loadavg()},
            "busy_processes_at_start": busy,
            "startup_precision_choice_s": startup,
            "seconds": time.perf_counter() - started,
            "details": details,
            "videos": {
                "clip": str(clip),
                "long": str(long_clip) if long_clip else None,
                "p7": str(p7_video) if p7_video else None,
                "photo": str(photo) if photo else None,
            },
        }
    )
    if "P8" in details:
        out["P8_first_projection_s"] = details["P8"]["first_projection_s"]
    log(
        "summary: "
        + "  ".join(f"{k}={results[k]:.3g}{UNITS[k]}" for k in results)
        + (f" (first projection {out['P8_first_projection_s']:.1f} s)" if "P8" in details else "")
        + f"  ({out['seconds']:.0f} s, load average {out['load_average']['end']})"
    )
    return out


def _skipped(key: str, args) -> bool:
    """Whether figure `key` cannot run here (P6e needs the app and Chromium); logged."""
    if key != "P6e":
        return False
    if args.no_app:
        log("P6e skipped (--no-app)")
        return True
    from emoclip_app.headless import CHROMIUM

    if not Path(CHROMIUM).is_file():
        log(f"P6e skipped (no {CHROMIUM})")
        return True
    return False


def _extra(key: str, res: dict[str, Any]) -> str:
    """What a figure's log line adds beside its value."""
    if key == "P8":
        return f"; first projection {res['first_projection_s']:.1f} s"
    if key == "P6e":
        return f"; capture to label {res['latency_ms']:.0f} ms (median)"
    return ""


def _record_tower(machine: dict[str, Any], predictor, startup: float) -> None:
    """The run records where it ran and what ran: the chosen image tower and how it was chosen."""
    info = predictor.parts.encoder.precision_info()
    machine["chosen_path"] = info["implementation"]
    machine["tower_choice"] = {k: info[k] for k in ("source", "frames_per_s", "failures", "reason")}
    log(
        f"predictor: {info['implementation']} ({predictor.parts.encoder.precision}; {info['source']}: "
        f"{info['reason']}), chosen in {startup:.2f} s at first use"
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the figures asked for (all by default), prints each with its verdict, writes the JSON."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.p8_methods.split(",") if m.strip()]
    repeats = args.repeats or (3 if args.quick else 5)
    if args.p7_child:
        p7_child(args.p7_child, args.model)
        return 0
    if args.p8_child:
        p8_child(args.p8_child, methods, repeats)
        return 0
    if args.p11_child:
        p11_child(args.p11_child)
        return 0

    asked = {k.strip().upper() for k in args.only.split(",")} if args.only else None
    wanted = {k for k in TARGETS if asked is None or k.upper() in asked}
    started = time.perf_counter()
    folder = cache_dir(args.cache_dir)
    machine = machine_info()
    load_start = loadavg()
    busy = busy_processes()
    log(
        f"EmoCLIP benchmark: model {args.model}, {'quick' if args.quick else 'full'} run, best of {repeats}"
    )
    log(
        f"machine: {machine['cpu']}, {machine['logical_cpus']} CPUs, ISA {' '.join(machine['isa'])}, "
        f"native bf16 {machine['native_bf16']}, oneDNN linear {machine['onednn_linear']}, "
        f"torch {machine['torch']} ({machine['torch_threads']} threads); load average {load_start}"
        + (f"; busy: {', '.join(busy)}" if busy else "")
    )

    media = _make_media(args, folder, wanted)

    model = load(args.model)
    WORK.install()  # counts the work of every figure (the children install their own)
    # as the app makes it (precision "auto", default batch, prefetch), keeping no encoded video
    predictor = make_predictor(model)
    t0 = time.perf_counter()
    predictor.parts.encoder.encode(np.zeros((1, model.image_size, model.image_size, 3), np.uint8))
    startup = time.perf_counter() - t0
    _record_tower(machine, predictor, startup)

    results: dict[str, Any] = {}
    details: dict[str, Any] = {}
    steps = _steps(args, model, predictor, media, folder, methods, repeats)
    for key, title, fn in steps:
        if key not in wanted or _skipped(key, args):
            continue
        log(f"{key} {title}")
        t0 = time.perf_counter()
        res = fn()
        res["seconds"] = time.perf_counter() - t0
        results[key] = float(res[key])
        details[key] = res
        extra = _extra(key, res)
        log(
            f"{key} = {results[key]:.3g}{UNITS[key]}  {verdict(key, results[key])}{extra}  [{res['seconds']:.0f} s]"
        )

    run = dict(machine=machine, load_start=load_start, busy=busy, startup=startup, started=started)
    out = _report(args, results, details, predictor, media, run, repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
        log(f"wrote {args.json}")
    predictor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
