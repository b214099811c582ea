"""An input on shared storage as a local file for the predictor, for the time of one analysis."""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs

from emoclip.batch.store import is_uri, open_location

CHUNK = 1 << 20


@contextlib.contextmanager
def local_copy(location: str, kind: str) -> Iterator[str]:
    """`location` itself when it is a local path; a URI (``s3://...``) is copied into a private
    temporary folder under its own name (a frame folder: its files), removed afterwards.

    Raises:
        FileNotFoundError: the URI names nothing.
    """
    if not is_uri(location):
        yield location
        return
    fs, path = open_location(location)
    folder = Path(tempfile.mkdtemp(prefix="emoclip-batch-"))
    try:
        name = posixpath.basename(path) or "input"
        target = folder / name
        if kind == "frames":
            target.mkdir()
            selector = pafs.FileSelector(path, allow_not_found=True)
            files = [i for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]
            if not files:
                raise FileNotFoundError(f"no such file or folder: {name}")
            for info in files:
                _download(fs, info.path, target / info.base_name)
        else:
            if fs.get_file_info(path).type != pafs.FileType.File:
                raise FileNotFoundError(f"no such file or folder: {name}")
            _download(fs, path, target)
        yield str(target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _download(fs: pafs.FileSystem, path: str, target: Path) -> None:
    with fs.open_input_stream(path) as src, open(target, "wb") as dst:
        while block := src.read(CHUNK):
            dst.write(block)


__all__ = ["local_copy"]
