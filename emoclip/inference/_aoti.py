"""The only place the library calls torch's ahead-of-time compiler (AOTInductor, private API).

``torch.export`` traces an image tower (`FastImageTower` on public operators, batch size dynamic:
tracing open_clip's own module instead measured 3.6x slower, its attention's in-projection
became a batched GEMM on a weight copied per token) and ``torch._inductor.aoti_compile_and_package``
compiles it with inductor's CPU backend and a C++ compiler into one ``.pt2`` package (generated
kernels in a shared library plus the frozen weights); ``torch._inductor.package.load_package``
loads it back in a second or two. These live under
``torch._inductor``: not public API, they may change in any torch release. So they are used only
here, on a torch version range where they were tried (`SUPPORTED_TORCH`), and every caller gets
the reason when they cannot be used (`unavailable_reason`); the plain and fast towers stay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from emoclip.inference._torch_version import outside

SUPPORTED_TORCH = ((2, 6), (3, 0))  # [first, past-the-end): aoti_compile_and_package and
# load_package(num_runners=...) as used here exist since torch 2.6 (run here on 2.14.1)
MAX_BATCH = 4096  # the dynamic batch dimension's upper bound in the compiled package


def unavailable_reason() -> str | None:
    """None when towers can be compiled and loaded here, else why not (one line)."""
    outside_versions = outside(SUPPORTED_TORCH, "AOTInductor is used on")
    if outside_versions:
        return outside_versions
    try:
        import torch._inductor as inductor
        from torch._inductor.cpp_builder import get_cpp_compiler  # noqa: F401 - checked to exist
        from torch._inductor.package import load_package  # noqa: F401 - checked to exist
    except ImportError as exc:
        return f"this torch has no inductor CPU backend ({exc})"
    if not hasattr(inductor, "aoti_compile_and_package"):
        return f"torch {torch.__version__} has no torch._inductor.aoti_compile_and_package"
    return missing_compiler()


def missing_compiler() -> str | None:
    """None when inductor finds a C++ compiler, else why not (one line)."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as exc:  # noqa: BLE001 - inductor raises its own InvalidCxxCompiler
        return f"no C++ compiler for inductor ({type(exc).__name__}: set CXX or install g++)"
    return None


class _Tower(nn.Module):
    """A tower callable as a module for `torch.export` (its tensors become the package's
    constants): (N, 3, S, S) float32 -> (N, D) float32."""

    def __init__(self, tower: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(x).float()


def compile_package(
    tower: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, path: Path, threads: int
) -> None:
    """Compile `tower` into the package `path` (minutes on a small CPU).

    Args:
        tower: An image tower on public torch operators (weights on the CPU; only read).
        example: (n >= 2, 3, S, S) frames to trace with (the batch stays dynamic).
        path: Where the package is written (its folder must exist).
        threads: OpenMP threads each call of the compiled kernels uses (1 for data-parallel
            workers of one thread each; -1: torch's thread count now).
    """
    from torch._inductor import aoti_compile_and_package

    module = _Tower(tower)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes={"x": {0: batch}})
        del module
        aoti_compile_and_package(
            program,
            package_path=str(path),
            inductor_configs={"freezing": True, "cpp.threads": threads},
        )


def load_package(path: Path, runners: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The compiled tower in `path`: (N, 3, S, S) float32 -> (N, D) float32; `runners` calls may
    run at once (they share one copy of the weights). Raises whatever the loader raises on a
    missing, truncated or foreign package."""
    from torch._inductor.package import load_package as load

    runner = load(str(path), num_runners=max(1, runners))

    def tower(images: torch.Tensor) -> torch.Tensor:
        return runner(images.contiguous())

    return tower
