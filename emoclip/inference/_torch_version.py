"""The torch-version gate of the modules that use private torch APIs (`_onednn`, `_aoti`)."""

from __future__ import annotations

import torch

Versions = tuple[tuple[int, int], tuple[int, int]]  # [first, past-the-end) as (major, minor)


def torch_version() -> tuple[int, int]:
    """(major, minor) of the running torch (``2.14.1+cu130`` -> (2, 14))."""
    parts = torch.__version__.split("+")[0].split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


def outside(supported: Versions, what: str) -> str | None:
    """None when the running torch is within `supported`, else why `what` is not used (a line)."""
    low, high = supported
    if low <= torch_version() < high:
        return None
    return (
        f"torch {torch.__version__} is outside the versions {what} "
        f"({low[0]}.{low[1]} <= torch < {high[0]}.{high[1]})"
    )
