"""Worker subclasses for tests/test_batch.py, importable by Ray's worker processes (the tests put
this folder on their PYTHONPATH): they kill their own process on marked inputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from emoclip.batch import BatchWorker


class CrashingWorker(BatchWorker):
    """Dies (``os._exit``) on inputs named ``crash-once*`` the first time (a marker file beside
    the input records it) and on inputs named ``poison*`` every time."""

    def predict_row(self, row: dict[str, Any]):
        name = row["name"]
        marker = Path(row["path"] + ".crashed")
        if name.startswith("poison") or (name.startswith("crash-once") and not marker.exists()):
            marker.touch()
            os._exit(1)
        return super().predict_row(row)
