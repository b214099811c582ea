"""The one thing a machine may lack for compiled towers: a C++ compiler for inductor.

Without one the compiled-tower tests skip, naming it, unless ``EMOCLIP_REQUIRE_COMPILER=1``
(set by ``.ci/run``, which installs g++), in which case that is a failure. torch's own inductor
APIs missing is never a skip (see `emoclip.inference.compiled_tower.unavailable_reason`).
"""

from __future__ import annotations

import os

import pytest

from emoclip.inference.compiled_tower import missing_compiler


def require_compiler() -> None:
    """Return when a C++ compiler is installed; else skip, or fail where one is required."""
    missing = missing_compiler()
    if missing is None:
        return
    if os.environ.get("EMOCLIP_REQUIRE_COMPILER") == "1":
        pytest.fail(f"a C++ compiler is required (EMOCLIP_REQUIRE_COMPILER=1) but {missing}")
    pytest.skip(missing)
