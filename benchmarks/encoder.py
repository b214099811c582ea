"""P1, encoder efficiency: the image tower's FLOP/s over this machine's best GEMM FLOP/s at the same
precision (fp32 and bf16), with the tower's FLOPs counted and derived analytically."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from emoclip.inference.linear_ops import backend_unavailable_reason, linear_backend

from .model import make_predictor, normalised_batch
from .timing import best_of, log
from .work import same_work


def tower_flops(model) -> tuple[float, float]:
    """(counted, analytic) FLOP per frame of the image tower (a multiply-add counts 2).

    Counted with torch.utils.flop_counter.FlopCounterMode on open_clip's module with autograd on,
    so MultiheadAttention takes its decomposed path (its fused inference kernel is invisible to the
    counter); analytic = patch GEMM + per block (qkv, attention, out, MLP) + projection.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    visual = model.backbone.visual
    x = normalised_batch(model, 1).requires_grad_(True)
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        visual(x)
    counted = float(counter.get_total_flops())
    conv = visual.conv1
    width, patch = conv.out_channels, conv.kernel_size[0]
    grid = visual.grid_size[0] * visual.grid_size[1]
    n = grid + 1
    blocks = list(visual.transformer.resblocks)
    mlp = blocks[0].mlp.c_fc.out_features
    per_block = (
        2 * n * width * 3 * width
        + 2 * 2 * n * n * width
        + 2 * n * width * width
        + 2 * 2 * n * width * mlp
    )
    analytic = (
        2 * grid * 3 * patch * patch * width
        + len(blocks) * per_block
        + 2 * width * visual.proj.shape[1]
    )
    return counted, float(analytic)


def last_block_skipped_flops(visual) -> float:
    """FLOP per frame that `FastImageTower` (the ``fast-*`` candidates) does not execute: the last block's query, attention,
    output projection and MLP for every token but the class token (their results never reach the
    output). P1 counts the model's FLOPs, as model-FLOP utilisation does; the JSON also gives the
    efficiency over the FLOPs actually executed."""
    width = visual.conv1.out_channels
    n = visual.grid_size[0] * visual.grid_size[1] + 1
    mlp = visual.transformer.resblocks[-1].mlp.c_fc.out_features
    per_token = 2 * width * width + 2 * 2 * n * width + 2 * width * width + 2 * 2 * width * mlp
    return float((n - 1) * per_token)


def gemm_rates(
    dtype,
    repeats: int,
    tower_rows: int,
    width: int,
    hidden: int,
    workers: int = 1,
    work: float = 4e9,
) -> dict[str, float]:
    """GFLOP/s of this machine's GEMMs at one precision: torch.mm squares and oneDNN packed linear,
    each with torch's intra-op threads and, when `workers` > 1, as `workers` concurrent
    single-threaded GEMMs (the layout the predictor's data-parallel encoder uses). Each timed call
    repeats a GEMM to about `work` FLOP (P1 passes one tower batch's FLOP, so GEMMs and the tower
    are timed over windows of the same length: short GEMMs would otherwise catch quiet moments of
    a shared machine more often than a whole tower batch can)."""
    import torch

    out = {}
    if workers > 1:
        par = {"2048": (2048, 2048, 2048)}
        rows = tower_rows // workers  # each worker's part of the batch
        if 2.0 * rows * width * hidden >= 5e8:
            par[f"{rows}x{width}x{hidden}"] = (rows, width, hidden)
        out.update(_parallel_gemm_rates(dtype, repeats, workers, par, work))
    shapes = {"mm_2048": (2048, 2048, 2048)}
    packed = {"packed_2048": (2048, 2048, 2048)}
    if 2.0 * tower_rows * width * hidden >= 5e8:  # the tower's own MLP GEMM, when it is a real one
        shapes[f"mm_{tower_rows}x{width}x{hidden}"] = packed[
            f"packed_{tower_rows}x{width}x{hidden}"
        ] = (tower_rows, width, hidden)
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        flop = 2.0 * m * k * n
        reps = max(1, round(work / flop))
        t, _ = best_of(
            lambda a=a, b=b, reps=reps: [torch.mm(a, b) for _ in range(reps)], repeats, warmup=0
        )
        out[name] = flop * reps / t / 1e9
    if backend_unavailable_reason("onednn") is None:
        for name, (m, k, n) in packed.items():
            ops = linear_backend("onednn", m)
            a = torch.randn(m, k).to(dtype)
            w = ops.prepare(torch.randn(n, k).to(dtype))
            flop = 2.0 * m * k * n
            reps = max(1, round(work / flop))
            t, _ = best_of(
                lambda a=a, w=w, ops=ops, reps=reps: [ops.linear(a, w, None) for _ in range(reps)],
                repeats,
                warmup=0,
            )
            out[name] = flop * reps / t / 1e9
    return out


def _parallel_gemm_rates(
    dtype, repeats: int, workers: int, shapes: dict[str, tuple[int, int, int]], work: float
) -> dict[str, float]:
    """`workers` concurrent single-threaded GEMMs (torch.mm, and oneDNN packed when available)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from emoclip.inference.parallel import single_threaded

    out = {}
    packed_ok = backend_unavailable_reason("onednn") is None
    with ThreadPoolExecutor(workers) as pool:
        for label, (m, k, n) in shapes.items():
            a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
            flop = 2.0 * m * k * n
            reps = max(1, round(work / workers / flop))
            kinds = {
                f"{workers}x1thread_mm_{label}": lambda _x, a=a, b=b, reps=reps: [
                    torch.mm(a, b) for _ in range(reps)
                ]
            }
            if packed_ok:
                ops = linear_backend("onednn", m)
                w = ops.prepare(b.t().contiguous())
                kinds[f"{workers}x1thread_packed_{label}"] = (
                    lambda _x, a=a, w=w, ops=ops, reps=reps: [
                        ops.linear(a, w, None) for _ in range(reps)
                    ]
                )
            for name, fn in kinds.items():

                def run(fn=fn):
                    list(pool.map(lambda _: single_threaded(fn, None), range(workers)))

                with contextlib.suppress(RuntimeError):
                    t, _ = best_of(run, repeats, warmup=0)
                    out[name] = workers * flop * reps / t / 1e9
    return out


def _towers(model, predictor) -> dict[str, Any]:
    """One predictor per precision for P1: the benchmark's own (the tower it chose) for its
    precision, a forced one for the other (fp32: open_clip's tower; bf16: the fastest bf16)."""
    chosen = predictor.parts.encoder.precision
    return {
        prec: predictor
        if prec == chosen
        else make_predictor(model, precision=prec, encode_workers=predictor.parts.encoder.workers)
        for prec in ("fp32", "bf16")
    }


def _interleaved_runs(
    predictor, towers: dict[str, Any], x, repeats: int, shape: tuple[int, int, int], flops: float
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, list[list[float]]], list]:
    """The GEMM rates and the tower's GFLOP/s of fp32 and bf16, interleaved ``repeats`` times so
    both see the same background load: (best GEMM rates, best tower GFLOP/s, frames/s of every
    timed tower call per repeat, the work each tower call counted)."""
    import torch

    tokens, width, hidden = shape
    bs = x.shape[0]
    best_gemm: dict[str, dict[str, float]] = {}
    best_tower: dict[str, float] = {}
    tower_runs: dict[str, list[list[float]]] = {}  # frames/s of every timed tower call, per repeat
    tower_work: list[dict[str, int]] = []
    with torch.inference_mode():
        for p in towers.values():
            p.parts.encoder.encode_tensor(x)  # build + warm
        for _ in range(repeats):  # interleaved, so both see the same background load
            for prec, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                rates = gemm_rates(
                    dtype,
                    1,
                    bs * tokens,
                    width,
                    hidden,
                    predictor.parts.encoder.workers,
                    flops * bs,
                )
                for k, v in rates.items():
                    best_gemm.setdefault(prec, {})[k] = max(best_gemm.get(prec, {}).get(k, 0.0), v)
                p = towers[prec]
                # three calls in a row: each GEMM figure is itself a warm loop of `reps` calls, and the
                # first tower call after the GEMMs runs ~5 % slower (caches and allocator just changed hands)
                t, ts = best_of(
                    lambda p=p: p.parts.encoder.encode_tensor(x), 3, warmup=0, work=tower_work
                )
                tower_runs.setdefault(prec, []).append([round(bs / s, 2) for s in ts])
                best_tower[prec] = max(best_tower.get(prec, 0.0), flops * bs / t / 1e9)
    return best_gemm, best_tower, tower_runs, tower_work


def bench_p1(model, predictor, repeats: int) -> dict[str, Any]:
    import torch

    counted, analytic = tower_flops(model)
    flops = counted
    log(
        f"  image tower: {counted / 1e9:.3f} GFLOP/frame counted (FlopCounterMode), {analytic / 1e9:.3f} analytic"
    )
    bs = predictor.settings.batch_size
    visual = model.backbone.visual
    tokens = visual.grid_size[0] * visual.grid_size[1] + 1
    width = visual.conv1.out_channels
    hidden = visual.transformer.resblocks[0].mlp.c_fc.out_features
    towers = _towers(model, predictor)
    x = normalised_batch(model, bs)
    res: dict[str, Any] = {
        "gflop_per_frame": flops / 1e9,
        "gflop_per_frame_analytic": analytic / 1e9,
        "batch": bs,
        "encode_workers": predictor.parts.encoder.workers,
        "torch_threads": torch.get_num_threads(),
    }
    best_gemm, best_tower, tower_runs, tower_work = _interleaved_runs(
        predictor, towers, x, repeats, (tokens, width, hidden), flops
    )
    for prec in ("fp32", "bf16"):
        peak = max(best_gemm[prec].values())
        implementation = towers[prec].parts.encoder.precision_info()["implementation"]
        res[prec] = {
            "tower_gflops": best_tower[prec],
            "tower_frames_per_s": best_tower[prec] * 1e9 / flops,
            "gemm_peak_gflops": peak,
            "gemm_gflops": best_gemm[prec],
            "gemm_peak_from": max(best_gemm[prec], key=best_gemm[prec].get),
            "efficiency": best_tower[prec] / peak,
            "tower_frames_per_s_runs": tower_runs[prec],
            "implementation": implementation,
        }
        if implementation.startswith("fast-"):  # it skips the last block's discarded work
            executed = flops - last_block_skipped_flops(visual)
            res[prec] |= {
                "executed_gflop_per_frame": executed / 1e9,
                "efficiency_executed_flops": best_tower[prec] * executed / flops / peak,
            }
        log(
            f"  {prec}: tower {best_tower[prec]:.0f} GFLOP/s ({res[prec]['tower_frames_per_s']:.1f} frames/s, "
            f"{implementation}) / GEMM peak {peak:.0f} GFLOP/s ({res[prec]['gemm_peak_from']}) "
            f"= {res[prec]['efficiency']:.2f}"
        )
    # the predictor's whole encode_images (uint8 crops -> normalise -> tower), at the app's precision
    crops = np.random.default_rng(0).integers(
        0, 255, (bs, model.image_size, model.image_size, 3), dtype=np.uint8
    )
    encode_work: list[dict[str, int]] = []
    t, _ = best_of(lambda: predictor.parts.encoder.encode(crops), repeats, work=encode_work)
    res["encode_images_frames_per_s"] = bs / t
    res["work"] = {
        "tower_call": same_work(tower_work),
        "encode_images_call": same_work(encode_work),
    }
    res["precision"] = predictor.parts.encoder.precision
    res["precision_info"] = predictor.parts.encoder.precision_info()
    res["chosen_path"] = predictor.parts.encoder.precision_info()["implementation"]
    res["P1"] = res[predictor.parts.encoder.precision][
        "efficiency"
    ]  # against the chosen precision's GEMM peak
    return res
