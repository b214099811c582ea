"""Compiled image towers (the ``aoti-*`` candidates of `emoclip.inference.autotune`): the fast
tower on public operators (`FastImageTower`, ``public``) compiled ahead of time by inductor's CPU
backend into a package kept on disk beside the machine's choice, so that a warm start loads it in
a second or two instead of compiling.

The package is named after the choice's key (`tower_cache.choice_key`: weights sha256, torch,
open_clip and emoclip versions, CPU model and flags, precision asked, layout) and the candidate, so
anything that changes the key compiles again. A package that cannot be loaded (truncated, written
by another torch) is reported with a warning, removed and compiled again; one that loads but fails
the parity check is removed by the caller (`discard`). Compiling takes minutes on a small CPU:
without ``build=True`` a missing package raises `ArtefactPending` and the caller decides when to
compile (the app compiles in the background while another tower serves). The private torch calls
are in `emoclip.inference._aoti`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("emoclip.inference.tower")

COMPILE_HINT = "about 2-5 min on 2 cores"  # measured on AMD EPYC (Zen 4), 2 shared cores (README)
_BUILD_LOCK = threading.Lock()  # one compilation at a time per process (it is CPU-bound)


class ArtefactPending(RuntimeError):
    """The compiled package is not on disk yet and compiling was not asked for now."""


def unavailable_reason() -> str | None:
    """None when towers can be compiled here, else why not (torch version, inductor, compiler)."""
    from emoclip.inference._aoti import unavailable_reason as reason

    return reason()


def missing_compiler() -> str | None:
    """None when a C++ compiler for inductor is installed, else why not: the one thing a machine
    may lack (torch's own APIs missing is a failure of this code, see `unavailable_reason`)."""
    from emoclip.inference._aoti import missing_compiler as missing

    return missing()


def kernel_threads(workers: int) -> int:
    """OpenMP threads the compiled kernels use per call: 1 under data-parallel workers (one
    intra-op thread each), else -1 (torch's thread count when compiled)."""
    return 1 if workers > 1 else -1


def artefact_path(choice_file: Path, candidate: str) -> Path:
    """The package of `candidate` kept beside the choice file `choice_file` (same key)."""
    return choice_file.with_name(f"{choice_file.stem}-{candidate}.pt2")


def discard(path: Path, why: str) -> None:
    """Remove a package that must not be used again (warned, with `why`)."""
    log.warning("compiled image tower %s removed (%s): it is compiled again next time", path, why)
    path.unlink(missing_ok=True)


def compiled_tower(
    visual: nn.Module,
    dtype: torch.dtype,
    path: Path,
    *,
    runners: int,
    threads: int,
    example: torch.Tensor,
    build: bool,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], float]:
    """The compiled tower kept in `path` (loaded), compiling it first when `build` allows.

    Args:
        visual: open_clip's image tower (re-laid as `FastImageTower` and compiled; only read).
        dtype: torch.bfloat16 or torch.float32.
        path: The package (see `artefact_path`).
        runners: Calls that may run at once (the predictor's encode workers).
        threads: OpenMP threads per call of the compiled kernels (`kernel_threads`).
        example: (n >= 2, 3, S, S) normalised frames to trace with.
        build: Compile when the package is missing or unreadable; else raise `ArtefactPending`.

    Returns:
        The tower ((N, 3, S, S) float32 -> (N, D) float32) and the seconds spent compiling (0.0
        when loaded from disk).

    Raises:
        RuntimeError: compiled towers cannot be used here (the message says why), or compiling
            failed; `ArtefactPending` when the package is missing and `build` is False.
    """
    from emoclip.inference import _aoti

    reason = _aoti.unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    if path.is_file():
        try:
            return _aoti.load_package(path, runners), 0.0
        except Exception as exc:  # noqa: BLE001 - any loader error means a corrupt package
            discard(path, f"unreadable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    if not build:
        raise ArtefactPending(f"not compiled yet on this machine ({COMPILE_HINT})")
    with _BUILD_LOCK:
        if path.is_file():  # another thread compiled it meanwhile
            return _aoti.load_package(path, runners), 0.0
        log.warning(
            "compiling the image tower (%s) once for this model and machine: %s; kept in %s",
            dtype,
            COMPILE_HINT,
            path,
        )
        t0 = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.pt2")
        try:
            from emoclip.inference.fast_paths import FastImageTower

            tower = FastImageTower.build(visual, dtype, len(example), backend="public")
            _aoti.compile_package(tower, example, tmp, threads)
            del tower
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        seconds = time.perf_counter() - t0
        log.warning("image tower compiled in %.0f s into %s", seconds, path)
        return _aoti.load_package(path, runners), seconds


@dataclass(frozen=True)
class Compiling:
    """Where and how the compiled candidates of one choice are kept and run.

    `choice_file` is the choice's file in the tower cache (packages are kept beside it, under the
    same key), `runners` the encode workers, `threads` the intra-op threads per call, `build`
    whether a missing package is compiled now (else `ArtefactPending`).
    """

    choice_file: Path
    runners: int
    threads: int
    build: bool = False

    def path(self, candidate: str) -> Path:
        """The package of `candidate` (see `artefact_path`)."""
        return artefact_path(self.choice_file, candidate)

    def tower(
        self, visual: nn.Module, dtype: torch.dtype, candidate: str, example: torch.Tensor
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """`compiled_tower` of `candidate` with this choice's layout."""
        fn, _ = compiled_tower(
            visual,
            dtype,
            self.path(candidate),
            runners=self.runners,
            threads=self.threads,
            example=example,
            build=self.build,
        )
        return fn

    def note(self, candidates: list[str]) -> str:
        """What the one line of a cold measurement says about `candidates` not compiled yet."""
        missing = [c for c in candidates if not self.path(c).is_file()]
        if not missing:
            return ""
        when = "now" if self.build else "in the background"
        return f", plus compiling {', '.join(missing)} {when} ({COMPILE_HINT} each)"
