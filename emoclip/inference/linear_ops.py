"""The linear layers a fast image tower runs on: public torch operators, or oneDNN's packed ones.

Both backends compute ``act(x @ W^T + b)`` and ``residual + x @ W^T + b`` on 2-D inputs; they
differ in how: `PublicLinear` calls ``torch.nn.functional.linear`` / ``torch.addmm`` and applies
the activation after the GEMM (public API, any torch); ``"onednn"`` packs each weight once and fuses
bias, activation and residual into the GEMM through private operators, quarantined in
`emoclip.inference._onednn` behind a torch-version check. Which one runs on a machine is decided
by measurement (`emoclip.inference.autotune`).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

BACKENDS = ("public", "onednn")


class LinearOps(Protocol):
    """What a fast tower needs of its linear layers (weights are (out, in))."""

    name: str

    def prepare(self, weight: torch.Tensor) -> torch.Tensor: ...

    def linear(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None,
        act: str = "none",
        algo: str = "",
    ) -> torch.Tensor: ...

    def linear_add(
        self, x: torch.Tensor, residual: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
    ) -> torch.Tensor: ...


class PublicLinear:
    """`LinearOps` on public operators: the weight kept as a plain contiguous (out, in) tensor."""

    name = "public"

    def prepare(self, weight: torch.Tensor) -> torch.Tensor:
        """The weight as it is used: contiguous (out, in)."""
        return weight.contiguous()

    def linear(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor | None,
        act: str = "none",
        algo: str = "",
    ) -> torch.Tensor:
        """(M, in) -> (M, out): ``act(x @ W^T + b)``, `act` one of none, gelu, swish (SiLU)."""
        y = F.linear(x, w, b)
        if act == "swish":
            return F.silu(y, inplace=True)
        if act == "gelu":
            return F.gelu(y, approximate=algo or "none")
        if act != "none":
            raise ValueError(f"unknown activation {act!r}")
        return y

    def linear_add(
        self, x: torch.Tensor, residual: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
    ) -> torch.Tensor:
        """(M, in), (M, out) -> (M, out): ``residual + x @ W^T + b``."""
        y = F.linear(x, w, b)
        return y.add_(residual)


def linear_backend(name: str, rows: int = 1024) -> LinearOps:
    """The backend `name` (one of `BACKENDS`); `rows` is the GEMM height oneDNN packs for.

    Raises:
        RuntimeError: ``"onednn"`` cannot be used on this torch (the message says why).
        ValueError: an unknown name.
    """
    if name == "public":
        return PublicLinear()
    if name == "onednn":
        from emoclip.inference._onednn import OneDNNLinear

        return OneDNNLinear(rows)
    raise ValueError(f"linear backend must be one of {BACKENDS}, not {name!r}")


def backend_unavailable_reason(name: str) -> str | None:
    """None when backend `name` can be used here, else why not."""
    if name == "onednn":
        from emoclip.inference._onednn import unavailable_reason

        return unavailable_reason()
    return None if name in BACKENDS else f"unknown linear backend {name!r}"
