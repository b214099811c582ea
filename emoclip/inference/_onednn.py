"""The only place the library calls private torch operators: oneDNN's packed, fused linear layer.

``torch.ops.mkldnn._reorder_linear_weight`` packs a weight once into oneDNN's blocked layout and
``torch.ops.mkldnn._linear_pointwise`` runs a linear layer on it with the bias, an activation or a
residual add fused into the GEMM (what inductor's CPU backend emits). They are not public API:
they may change or vanish in any torch release. So they are used only here, only on a torch
version range whose signatures are known (`SUPPORTED_TORCH`), and every caller gets the reason
when they are not usable (`unavailable_reason`) and falls back to the public operators of
`emoclip.inference.linear_ops`.
"""

from __future__ import annotations

import torch

from emoclip.inference._torch_version import outside

SUPPORTED_TORCH = ((2, 1), (3, 0))  # [first, past-the-end) (major, minor): the ops' signatures
# have been these since torch 2.1 (run here up to 2.14.1); a torch 3 is not trusted until tried


def unavailable_reason() -> str | None:
    """None when the packed oneDNN linear ops can be used here, else why not (one line)."""
    outside_versions = outside(SUPPORTED_TORCH, "the private oneDNN linear ops are used on")
    if outside_versions:
        return outside_versions
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (torch.backends.mkldnn.is_available() is False)"
    ops = torch.ops.mkldnn
    for name in ("_reorder_linear_weight", "_linear_pointwise"):
        if not hasattr(ops, name):
            return f"torch {torch.__version__} has no torch.ops.mkldnn.{name}"
    return None


class OneDNNLinear:
    """Linear layers on oneDNN-packed weights with fused epilogues (see the module docstring).

    Args:
        rows: The number of rows (tokens x frames) the GEMMs will mostly see: oneDNN picks the
            packed layout for it.
    """

    name = "onednn"

    def __init__(self, rows: int) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        self.rows = rows

    def prepare(self, weight: torch.Tensor) -> torch.Tensor:
        """A (out, in) weight packed for `linear` (a new tensor in oneDNN's layout)."""
        return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), self.rows)

    def linear(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None,
        act: str = "none",
        algo: str = "",
    ) -> torch.Tensor:
        """(M, in) -> (M, out): ``act(x @ W^T + b)``, `act` one of none, gelu (`algo`: tanh or
        empty), swish."""
        return torch.ops.mkldnn._linear_pointwise(x, w, b, act, [], algo)

    def linear_add(
        self, x: torch.Tensor, residual: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
    ) -> torch.Tensor:
        """(M, in), (M, out) -> (M, out): ``residual + x @ W^T + b``."""
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, w, b, "add")
