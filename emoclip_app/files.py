"""Files handed to gradio for download: a bounded per-process folder, safe file names."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import settings


class OutputDir:
    """Per-process folder for files handed to gradio (downloads), one sub-folder per request.

    Bounded: sub-folders older than `max_age` seconds are removed, and only the newest
    `max_folders` are kept (gradio copies each returned file into its own cache as the request
    returns, so an old sub-folder is never needed again).
    """

    def __init__(self, max_age: float = 3600.0, max_folders: int = 256) -> None:
        self.max_age = max_age
        self.max_folders = max(1, int(max_folders))
        self._root: Path | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path | None:
        """The folder (None until the first `new()`)."""
        return self._root

    def new(self) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="emoclip-app-"))
                import atexit

                atexit.register(shutil.rmtree, self._root, True)
            self._prune()
            folder = self._root / uuid.uuid4().hex[:12]
            folder.mkdir()
            return folder

    def _prune(self) -> None:
        now = time.time()
        folders = []
        for old in self._root.iterdir():  # type: ignore[union-attr]
            try:
                folders.append((old.stat().st_mtime, old))
            except OSError:
                continue
        folders.sort()
        excess = len(folders) - (self.max_folders - 1)  # room for the one about to be made
        for i, (mtime, old) in enumerate(folders):
            if i < excess or now - mtime > self.max_age:
                shutil.rmtree(old, ignore_errors=True)


def safe_stem(name: str, default: str = "clip") -> str:
    """A file-name stem made of letters, digits, '-', '_' (user text never picks paths)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name or default).stem).strip("-")[:60]
    return stem or default


OUTPUTS = OutputDir(max_age=settings.FILES_SECONDS or float("inf"))


def download_files(
    prediction: Any,
    name: str,
    warnings: Sequence[str] | None = None,
    classes: Any = None,
    chosen_face: int | None = None,
) -> list[str]:
    """The prediction as JSON and CSV files for download (paths; names from `name`, made safe).

    The JSON is the library's own export (`Prediction.to_json`, so whatever it records, e.g.
    provenance, is in it) with the `warnings` the page shows and, under ``class_set``, the
    class set with its descriptions (`classes`: an `emoclip.classes.ClassSet`) and, for a photo,
    under ``chosen_face``, the number (1 = the first) of the face whose result is the top-level
    answer (`chosen_face`; `prediction` is then that face's view). The CSV's
    provenance is ``STEM-emotions.provenance.json`` beside it (`emoclip.provenance.write_sidecar`).
    """
    import dataclasses
    import json

    from emoclip.results import write_text

    folder = OUTPUTS.new()
    stem = safe_stem(name)
    json_path, csv_path = folder / f"{stem}-emotions.json", folder / f"{stem}-emotions.csv"
    if warnings is not None:
        prediction = dataclasses.replace(prediction, warnings=list(dict.fromkeys(warnings)))
    data = json.loads(prediction.to_json())
    if classes is not None:
        data["class_set"] = classes.to_dict()
    if chosen_face is not None:
        data["chosen_face"] = chosen_face
    write_text(json_path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    prediction.to_csv(csv_path)  # writes the provenance sidecar when the prediction has one
    sidecar = csv_path.with_suffix(".provenance.json")
    return [str(json_path), str(csv_path)] + ([str(sidecar)] if sidecar.exists() else [])


def delete_cache_policy(seconds: float | None = None) -> tuple[int, int] | None:
    """gradio's `delete_cache` (every `frequency` s, delete uploads and output copies older than
    `age` s): without it gradio's cache grows with every upload and download, forever."""
    seconds = settings.FILES_SECONDS if seconds is None else seconds
    if seconds is None:
        return None
    age = max(1, int(seconds))
    return (max(1, min(600, age // 2)), age)
