"""Which image tower a machine runs: each candidate built, checked against the plain tower on the
model's own weights, timed at the predictor's batch and thread layout; the fastest that passes is
kept, and the choice remembered on disk (`emoclip.inference.tower_cache`).

Candidates (`CANDIDATES`): the model's own open_clip tower in fp32 (``plain-fp32``, the
reference) and `FastImageTower` in fp32 and bf16 on public operators or oneDNN's packed ones.
A bf16 candidate must reach cosine >= `BF16_MIN_COSINE` to the plain tower on every frame of a
fixed batch, an fp32 candidate a max abs difference <= `FP32_MAX_ABS`. A candidate that cannot be
built, fails its check or is not measured is reported with the reason (`TowerChoice.failures`,
logged as a warning when it is an error): nothing falls back silently.

`choose_tower` is the whole decision, with explicit arguments (no environment reads): a forced
``"fp32"`` is the plain tower, a forced ``"bf16"`` the fastest bf16 candidate that passes (or a
refusal saying why none did), ``"auto"`` every candidate this CPU can run natively.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from emoclip.inference.compiled_tower import (
    ArtefactPending,
    Compiling,
    discard,
    kernel_threads,
    unavailable_reason,
)
from emoclip.inference.fast_paths import AutocastTower, FastImageTower, image_tower_gflops
from emoclip.inference.parallel import Layout
from emoclip.inference.tower_cache import (
    ChoiceCache,
    CpuInfo,
    choice_key,
    model_weights_sha256,
    read_cpu_info,
)
from emoclip.model.network import EmoCLIP

log = logging.getLogger("emoclip.inference.tower")

BF16_MIN_COSINE = 0.999  # the bar (#22); bf16 measured 0.99996 on ViT-B/32 (README)
FP32_MAX_ABS = 1e-5  # the bar; fast fp32 measured 2e-6 to 3e-6 on ViT-B/32
AUTO_MIN_GFLOPS = 0.5  # "auto" runs smaller towers (test models) plain, unmeasured: a fast
# tower saves them microseconds (the bar the bf16 choice used since issue #5)
ELIMINATE_RATIO = (
    1.5  # a candidate this much slower than the best on its first call is not re-timed
)
BUDGET_S = 30.0  # candidates left when this much time has gone are reported as not measured
PARITY_FRAMES = 4
PENDING = "pending: "  # a compiled candidate's failure text while its package is not compiled

Tower = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, S, S) normalised frames -> (N, D) float32


@dataclass(frozen=True)
class Candidate:
    """One way to run the image tower: `backend` None is the model's own open_clip module."""

    name: str
    precision: str  # "fp32" or "bf16"
    backend: str | None


CANDIDATES = (  # measured in this order, likely fastest first: a slow one is timed once only
    Candidate("fast-bf16-onednn", "bf16", "onednn"),
    Candidate("fast-bf16-public", "bf16", "public"),
    Candidate("fast-fp32-onednn", "fp32", "onednn"),
    Candidate("fast-fp32-public", "fp32", "public"),
    Candidate("autocast-bf16", "bf16", "autocast"),
    Candidate("aoti-bf16", "bf16", "aoti"),  # compiled: opt-in, packages kept on disk
    Candidate("aoti-fp32", "fp32", "aoti"),
    Candidate("plain-fp32", "fp32", None),
)
BY_NAME = {c.name: c for c in CANDIDATES}


@dataclass
class TowerChoice:
    """The image tower chosen for a model on this machine, and how.

    `fn` is None for the plain tower (the caller runs ``model.encode_image``). `parity` is the
    cosine (bf16) or max abs difference (fp32 fast) to the plain tower on the check batch.
    `frames_per_s` has every candidate timed (from the cache when `source` is ``"cache"``),
    `failures` every candidate not used for another reason than speed, with that reason.
    """

    name: str
    precision: str
    fn: Tower | None
    reason: str
    parity: float | None = None
    frames_per_s: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    source: str = "rule"  # "forced", "rule", "measured", "cache" or "refused"
    seconds: float = 0.0
    cache_file: str | None = None
    cpu: str = ""
    isa: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # compiled candidates not compiled yet

    @property
    def own_weights(self) -> bool:
        """Whether the tower holds its own copy of the weights (the plain tower's can go)."""
        return self.fn is not None and BY_NAME[self.name].backend not in (None, "autocast")

    @property
    def refused(self) -> bool:
        """A forced precision no candidate could serve: `reason` says why."""
        return self.source == "refused"

    def report(self) -> str:
        """Several lines for people (``emoclip doctor``, the app's model card)."""
        lines = [
            f"image tower: {self.name} ({self.precision}), {self.source}: {self.reason}",
            f"CPU: {self.cpu or '?'}; ISA: {', '.join(self.isa) or 'none detected'}",
        ]
        for name, fps in sorted(self.frames_per_s.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name}: {fps:.1f} frames/s")
        for name, why in self.failures.items():
            lines.append(f"  {name}: not used: {why}")
        if self.cache_file:
            lines.append(f"choice kept in {self.cache_file}")
        return "\n".join(lines)


def parity_images(model: EmoCLIP, n: int = PARITY_FRAMES) -> torch.Tensor:
    """(n, 3, S, S) CLIP-normalised smooth random images (seed 0), the parity check's batch."""
    cfg = model.config.preprocess
    size = cfg.image_size
    gen = torch.Generator().manual_seed(0)
    low = torch.rand(n, 3, 7, 7, generator=gen)
    images = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    images = (images + 0.08 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    return (images - mean) / torch.tensor(cfg.std).view(1, 3, 1, 1)


def build_candidate(
    model: EmoCLIP,
    candidate: Candidate,
    batch: int,
    on_block: Callable[[torch.nn.Module], object] | None = None,
    compiling: Compiling | None = None,
) -> Tower:
    """The callable of `candidate` for `model` (raises whatever stops it being built). Every
    decision builds through this module attribute, so a replacement is checked like the real one.
    A compiled candidate needs `compiling` (`compiled_tower.ArtefactPending` when its package is
    not on disk and ``compiling.build`` is False)."""
    if candidate.backend is None:
        return model.encode_image
    if candidate.backend == "autocast":
        return AutocastTower(model)
    dtype = torch.bfloat16 if candidate.precision == "bf16" else torch.float32
    if candidate.backend == "aoti":
        if compiling is None:
            raise RuntimeError("compiled towers are kept in the tower cache, which is off here")
        return compiling.tower(
            model.backbone.visual, dtype, candidate.name, parity_images(model, 2)
        )
    return FastImageTower.build(
        model.backbone.visual, dtype, batch, on_block=on_block, backend=candidate.backend
    )


def parity(candidate: Candidate, out: torch.Tensor, ref: torch.Tensor) -> tuple[bool, float, str]:
    """(passes, figure, text) of `out` against the plain tower's `ref`, both (N, D)."""
    if candidate.precision == "bf16":
        cos = float(F.cosine_similarity(ref.float(), out.float(), dim=-1).min())
        ok = cos >= BF16_MIN_COSINE
        return ok, cos, f"cosine {cos:.5f} {'>=' if ok else '<'} {BF16_MIN_COSINE} of fp32"
    err = float((out.float() - ref.float()).abs().max())
    ok = err <= FP32_MAX_ABS
    return ok, err, f"max abs {err:.2g} {'<=' if ok else '>'} {FP32_MAX_ABS} of fp32"


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes (the measurement's only clock: tests count its calls)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _check(
    model: EmoCLIP, candidate: Candidate, fn: Tower, images: torch.Tensor, ref: torch.Tensor
) -> tuple[bool, float, str]:
    with torch.inference_mode():
        return parity(candidate, fn(images), ref)


def _failure(choice: TowerChoice, name: str, exc: BaseException) -> None:
    why = f"could not be built: {type(exc).__name__}: {exc}".splitlines()[0]
    choice.failures[name] = why
    log.warning("image tower %s %s", name, why)


class Measurement:
    """One cold measurement (see `choose_tower`): candidates in order, the best kept alive."""

    def __init__(self, model: EmoCLIP, layout: Layout, budget_s: float) -> None:
        self.model, self.layout, self.budget_s = model, layout, budget_s
        self.images = parity_images(model)
        with torch.inference_mode():
            self.ref = model.encode_image(self.images).float()
        self.x = parity_images(model, layout.batch)
        self.best: tuple[float, Candidate, Tower, float, str] | None = None
        self.t0 = time.perf_counter()

    def timed(self, fn: Tower) -> float:
        """Seconds of one batch through the predictor's layout (best of two, unless the first
        call is already `ELIMINATE_RATIO` times the best so far)."""
        first = time_call(lambda: self.layout.run(fn, self.x))
        if self.best is not None and first > ELIMINATE_RATIO * self.best[0]:
            return first
        return min(first, time_call(lambda: self.layout.run(fn, self.x)))

    def run(
        self,
        candidates: Iterable[Candidate],
        choice: TowerChoice,
        on_block: Callable[[torch.nn.Module], object] | None,
        compiling: Compiling | None = None,
    ) -> None:
        for cand in candidates:
            late = time.perf_counter() - self.t0 > self.budget_s
            # the reference is always timed; a compiled candidate too (loaded, compiled when asked
            # or left pending: its compile time is announced, not budgeted)
            if late and choice.frames_per_s and cand.backend not in (None, "aoti"):
                choice.failures[cand.name] = (
                    f"not measured: the {self.budget_s:.0f} s budget ran out"
                )
                continue
            try:
                fn = build_candidate(self.model, cand, self.layout.batch, on_block, compiling)
                ok, figure, text = _check(self.model, cand, fn, self.images, self.ref)
            except ArtefactPending as exc:  # compiled later (the app: in the background)
                choice.pending.append(cand.name)
                choice.failures[cand.name] = f"{PENDING}{exc}"
                continue
            except Exception as exc:  # noqa: BLE001 - reported per candidate, never silent
                _failure(choice, cand.name, exc)
                continue
            if not ok:
                choice.failures[cand.name] = f"failed the parity check: {text}"
                log.warning("image tower %s failed the parity check: %s", cand.name, text)
                if cand.backend == "aoti" and compiling is not None:
                    discard(compiling.path(cand.name), "failed parity")
                continue
            seconds = self.timed(fn)
            choice.frames_per_s[cand.name] = round(self.layout.batch / seconds, 2)
            if self.best is None or seconds < self.best[0]:
                self.best = (seconds, cand, fn, figure, text)
            del fn  # a loser's weights are freed here (the best is held by `self.best`)


def candidates_for(
    model: EmoCLIP,
    precision: str,
    cpu: CpuInfo,
    min_gflops: float = AUTO_MIN_GFLOPS,
    compiled: bool = False,
) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates a request considers on this machine, and why the others are left out
    (``"auto"`` keeps a tower under `min_gflops` GFLOP/frame plain; the compiled ones need
    `compiled`, inductor and a C++ compiler)."""
    device = model.logit_scale.device.type
    skipped: dict[str, str] = {}
    if precision == "fp32":
        return [BY_NAME["plain-fp32"]], skipped
    fast = [c for c in CANDIDATES if c.backend is not None]
    aoti = [c for c in fast if c.backend == "aoti"]
    why_not = None if compiled else "opt-in: compile_tower is off (EMOCLIP_COMPILE_TOWER=1)"
    why_not = why_not or (unavailable_reason() if aoti else None)
    if why_not is not None:
        skipped |= {c.name: why_not for c in aoti}
        fast = [c for c in fast if c.backend != "aoti"]
    if device != "cpu":
        skipped |= {c.name: f"the fast towers run on the CPU only (device {device})" for c in fast}
        fast = [c for c in fast if c.backend == "autocast"]
    if precision == "bf16":
        return [c for c in fast if c.precision == "bf16"], skipped
    keep = []
    gflops = image_tower_gflops(model.backbone.visual)
    for c in fast:
        if gflops < min_gflops:
            skipped[c.name] = f"auto: the tower is too small to measure ({gflops:.2g} GFLOP/frame)"
        elif c.precision == "bf16" and not cpu.native_bf16:
            skipped[c.name] = "auto: this CPU has no native bf16 (avx512_bf16 or amx_bf16)"
        else:
            keep.append(c)
    return [*keep, BY_NAME["plain-fp32"]], skipped


def _from_cache(
    model: EmoCLIP,
    record: dict[str, Any],
    layout: Layout,
    on_block: Callable[[torch.nn.Module], object] | None,
    compiling: Compiling | None,
) -> TowerChoice | None:
    """The cached choice rebuilt and re-checked (no timing), or None when that fails (warned)."""
    cand = BY_NAME.get(record["choice"])
    if cand is None:
        log.warning("cached image-tower choice %r is unknown: measuring again", record["choice"])
        return None
    try:
        fn = build_candidate(model, cand, layout.batch, on_block, compiling)
        images = parity_images(model)
        with torch.inference_mode():
            ref = model.encode_image(images).float()
        ok, figure, text = _check(model, cand, fn, images, ref)
    except Exception as exc:  # noqa: BLE001 - warned, then measured again
        log.warning(
            "cached image tower %s could not be rebuilt (%s): measuring again", cand.name, exc
        )
        return None
    if not ok:
        log.warning(
            "cached image tower %s failed its parity check (%s): measuring again", cand.name, text
        )
        return None
    return TowerChoice(
        cand.name,
        cand.precision,
        None if cand.backend is None else fn,
        f"measured earlier on this machine, {text}",
        parity=figure,
        frames_per_s=dict(record["frames_per_s"]),
        failures=dict(record["failures"]),
        source="cache",
    )


def choose_tower(
    model: EmoCLIP,
    precision: str,
    *,
    batch: int = 32,
    workers: int = 1,
    threads: int | None = None,
    cache_dir: Path | None = None,
    cpu: CpuInfo | None = None,
    budget_s: float = BUDGET_S,
    on_block: Callable[[torch.nn.Module], object] | None = None,
    min_gflops: float = AUTO_MIN_GFLOPS,
    compiled: bool = False,
    compile_now: bool = False,
) -> TowerChoice:
    """The image tower `model` runs on this machine (see the module docstring).

    Args:
        model: The model (its image tower's weights are the reference and are hashed for the key).
        precision: ``"auto"``, ``"fp32"`` (the plain tower, no measurement) or ``"bf16"``.
        batch, workers, threads: The predictor's batch, data-parallel workers and small-batch
            threads: candidates are timed through `parallel.split_encode` with them.
        cache_dir: Where choices are kept (`tower_cache.ChoiceCache`); None keeps nothing.
        cpu: The CPU (default: this machine's ``/proc/cpuinfo``).
        budget_s: Candidates left after this many seconds of measuring are not measured.
        on_block: Called with each residual block of the plain tower once a fast candidate has
            copied its weights (to give back their file pages).
        min_gflops: ``"auto"`` keeps towers smaller than this plain, without measuring.
        compiled: Consider the compiled (``aoti-*``) candidates (their packages are kept beside
            the choice in `cache_dir`).
        compile_now: Compile a missing package now (minutes); else it is left ``pending``
            (`TowerChoice.pending`) for the caller to compile (`tower_challenge`).

    Returns:
        A `TowerChoice`; ``refused`` when a forced ``"bf16"`` found no bf16 tower that passes.
    """
    cpu = cpu or read_cpu_info()
    candidates, skipped = candidates_for(model, precision, cpu, min_gflops, compiled)
    if precision == "fp32":
        forced = TowerChoice("plain-fp32", "fp32", None, "requested", source="forced")
        forced.cpu, forced.isa = cpu.model, cpu.isa()
        return forced
    if candidates == [BY_NAME["plain-fp32"]]:
        why = "; ".join(sorted(set(skipped.values()))) or "the only candidate"
        only = TowerChoice("plain-fp32", "fp32", None, why, failures=skipped)
        only.cpu, only.isa = cpu.model, cpu.isa()
        return only
    layout = Layout(batch, workers, threads)
    cache = ChoiceCache(cache_dir) if cache_dir is not None else None
    key, compiling = None, None
    if cache is not None:
        key = layout_key(model, precision, layout, cpu)
        compiling = Compiling(cache.path(key), workers, kernel_threads(workers), build=compile_now)
        record = cache.load(key)
        if record and BY_NAME.get(record["choice"]) not in candidates:  # e.g. compiled, now off
            record = None
        cached = _from_cache(model, record, layout, on_block, compiling) if record else None
        if cached is not None:
            cached.cache_file, cached.cpu, cached.isa = str(cache.path(key)), cpu.model, cpu.isa()
            cached.pending = _pending(candidates, cached)
            return cached
    choice = _measure(
        model, precision, candidates, layout, budget_s, on_block, cache, key, compile_now
    )
    choice.failures = skipped | choice.failures
    choice.cpu, choice.isa = cpu.model, cpu.isa()
    return choice


def _pending(candidates: list[Candidate], choice: TowerChoice) -> list[str]:
    """The compiled `candidates` a cached `choice` has not measured (nor seen fail)."""
    failed = ("failed", "could not")
    return [
        c.name
        for c in candidates
        if c.backend == "aoti"
        and c.name not in choice.frames_per_s
        and not choice.failures.get(c.name, "").startswith(failed)
    ]


def layout_key(model: EmoCLIP, precision: str, layout: Layout, cpu: CpuInfo) -> dict[str, Any]:
    """The cache key of `model`'s choice at `layout` on `cpu` (`tower_cache.choice_key`)."""
    return choice_key(
        model_weights_sha256(model.backbone.visual, getattr(model, "source", None)),
        cpu,
        precision=precision,
        batch=layout.batch,
        workers=layout.workers,
        threads=layout.threads,
    )


def _measure(
    model: EmoCLIP,
    precision: str,
    candidates: list[Candidate],
    layout: Layout,
    budget_s: float,
    on_block: Callable[[torch.nn.Module], object] | None,
    cache: ChoiceCache | None,
    key: dict[str, Any] | None,
    compile_now: bool = False,
) -> TowerChoice:
    names = ", ".join(c.name for c in candidates)
    where = f"; kept in {cache.path(key)}" if cache is not None and key is not None else ""
    compiling = None
    if cache is not None and key is not None:
        compiling = Compiling(
            cache.path(key), layout.workers, kernel_threads(layout.workers), compile_now
        )
    log.warning(
        "measuring %d image-tower candidates (%s) at batch %d on %d worker(s), once for this "
        "model and machine: about %.0f s at most%s%s",
        len(candidates),
        names,
        layout.batch,
        layout.workers,
        budget_s,
        compiling.note([c.name for c in candidates if c.backend == "aoti"]) if compiling else "",
        where,
    )
    t0 = time.perf_counter()
    choice = TowerChoice("", precision, None, "", source="measured")
    m = Measurement(model, layout, budget_s)
    m.run(candidates, choice, on_block, compiling)
    choice.seconds = round(time.perf_counter() - t0, 2)
    if m.best is None and BY_NAME["plain-fp32"] in candidates:  # the reference is always right
        choice.name, choice.precision, choice.parity = "plain-fp32", "fp32", 0.0
        choice.reason = "no other candidate passed or was measured in time"
        return choice
    if m.best is None:
        reasons = "; ".join(f"{k}: {v}" for k, v in choice.failures.items())
        choice.name, choice.source = f"no {precision} tower", "refused"
        choice.reason = f"precision {precision!r} refused: no {precision} tower passed ({reasons}); use precision 'fp32' or 'auto'"
        return choice
    _, cand, fn, figure, text = m.best
    choice.name, choice.precision, choice.parity = cand.name, cand.precision, figure
    choice.fn = None if cand.backend is None else fn
    n = len(choice.frames_per_s)
    choice.reason = f"fastest of {n} measured in {choice.seconds:.1f} s, {text}"
    log.info("image tower %s chosen: %s", cand.name, choice.reason)
    unmeasured = [k for k, why in choice.failures.items() if why.startswith("not measured")]
    if unmeasured:  # a busy machine: measure again next time rather than keep a partial answer
        log.warning("image-tower choice not kept: %s not measured in time", ", ".join(unmeasured))
    elif cache is not None and key is not None:
        record = {
            "choice": cand.name,
            "precision": cand.precision,
            "frames_per_s": choice.frames_per_s,
            "failures": choice.failures,
            "seconds": choice.seconds,
        }
        saved = cache.save(key, record)
        choice.cache_file = str(saved) if saved else None
    return choice
