"""Settings read from the environment: numbers, bounded floats and on/off flags (``EMOCLIP_*``).

An explicit argument always wins over the environment; a malformed value is a ValueError that
names the variable.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["env_count", "env_flag", "env_float", "env_number"]


def env_number(name: str, kind: type) -> Any:
    """The environment setting `name` converted by `kind` (e.g. int, float); ValueError if it is not one."""
    value = os.environ.get(name, "").strip()
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def env_float(name: str, value: float | None, default: float, low: float, high: float) -> float:
    """An explicit value, else the environment setting `name`, else `default`; checked in [low, high]."""
    if value is None:
        value = env_number(name, float) if os.environ.get(name, "").strip() else default
    value = float(value)
    if not low <= value <= high:
        raise ValueError(
            f"{name.removeprefix('EMOCLIP_').lower()} must be in [{low}, {high}], got {value}"
        )
    return value


def env_flag(name: str, default: bool) -> bool:
    """A boolean environment setting: 0/false/no/off are False, anything else True."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def env_count(name: str, value: int | None, low: int) -> int | None:
    """An explicit value, else the environment setting `name` (an integer), else None; checked
    to be at least `low`."""
    if value is None and os.environ.get(name, "").strip():
        value = env_number(name, int)
    if value is not None and int(value) < low:
        raise ValueError(
            f"{name.removeprefix('EMOCLIP_').lower()} must be at least {low}, got {value}"
        )
    return None if value is None else int(value)
