"""Lazy re-exports for a package's ``__init__`` (PEP 562), so importing a package does no work.

    __getattr__, __dir__, __all__ = attach(__name__, {"probe_video": "probe", ...})

A name is imported from its submodule on first access and then cached in the package's namespace.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any


def attach(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for `package`, exporting ``name -> submodule`` lazily."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(import_module(f"{package}.{exports[name]}"), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__, names
