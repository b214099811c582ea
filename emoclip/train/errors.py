"""The error a training run raises when it cannot start as configured."""

from __future__ import annotations


class TrainSetupError(RuntimeError):
    """A run cannot start as configured (missing weights or packages, unsupported precision...)."""
