"""Where a batch's files live: a local folder or a URI of a filesystem pyarrow understands.

``s3://bucket/prefix``, ``gs://bucket/prefix``, ``hdfs://host/path`` and ``file:///path`` are
opened with `pyarrow.fs.FileSystem.from_uri`, unchanged (credentials as pyarrow reads them: for
S3 ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3``, ``AWS_DEFAULT_REGION``; for GCS Google's default credentials, or
``gs://anonymous@bucket/...`` for none); anything else is a local path. A URI's user part and
query (pyarrow's options, e.g. ``?endpoint_override=HOST:PORT&scheme=http`` for a GCS emulator)
are kept on every URI made from it (`uri_of`, `join_uri`, `uri_parent`). `ResultsStore` is a results folder:
complete Parquet parts in ``results/`` and ``timeline/``, each written under a hidden temporary
name and then moved into place, so a killed run leaves only complete parts.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from emoclip.batch.schema import RESULTS_DIR, TIMELINE_DIR, timeline_schema

SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "viewfs://", "file://")


def is_uri(location: str | os.PathLike) -> bool:
    """Whether `location` is a URI `open_location` hands to pyarrow (see `SCHEMES`)."""
    return str(location).lower().startswith(SCHEMES)


def open_location(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path inside it)`` of a local path or a URI."""
    text = str(location)
    if is_uri(text):
        fs, path = pafs.FileSystem.from_uri(text)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(text)


# Schemes whose filesystem paths start with the bucket (the URI's host); the others' paths are
# absolute paths on the host the URI names (hdfs://namenode:8020/path, file:///path).
BUCKET_SCHEMES = ("s3", "gs", "gcs")


def _split(uri: str) -> tuple[str, str, str]:
    """``(scheme, authority, query with its "?" or "")`` of a URI."""
    scheme, _, rest = uri.partition("://")
    rest, mark, query = rest.partition("?")
    return scheme, rest.split("/", 1)[0], mark + query


def uri_of(fs_path: str, like: str) -> str:
    """The URI of `fs_path`, a path inside the filesystem opened from the URI `like`: its scheme,
    its user part (``anonymous@``, credentials) or host, and its query are kept."""
    scheme, authority, query = _split(like)
    if scheme.lower() in BUCKET_SCHEMES:
        user = authority.rpartition("@")[0]
        return f"{scheme}://{user + '@' if user else ''}{fs_path.lstrip('/')}{query}"
    return f"{scheme}://{authority}/{fs_path.lstrip('/')}{query}"


def join_uri(base: str, name: str) -> str:
    """`name` inside the location `base` (a URI, its query kept, or a local path)."""
    if not is_uri(base):
        return os.path.join(base, name)
    root, mark, query = base.partition("?")
    return f"{root.rstrip('/')}/{name.lstrip('/')}{mark}{query}"


def uri_parent(uri: str) -> str:
    """The folder URI holding the URI `uri` (its query kept)."""
    root, mark, query = uri.partition("?")
    return root.rstrip("/").rsplit("/", 1)[0] + mark + query


def file_info(location: str) -> pafs.FileInfo:
    """pyarrow's `FileInfo` of a local path or URI (type NotFound when it does not exist)."""
    fs, path = open_location(location)
    return fs.get_file_info(path)


class ResultsStore:
    """A results folder (`location`: local path or URI) with ``results/`` and ``timeline/``."""

    def __init__(self, location: str | os.PathLike) -> None:
        self.location = str(location)
        self.fs, self.root = open_location(location)

    def folder(self, table: str) -> str:
        return (
            posixpath.join(self.root, table)
            if is_uri(self.location)
            else str(Path(self.root) / table)
        )

    def create(self) -> None:
        for table in (RESULTS_DIR, TIMELINE_DIR):
            self.fs.create_dir(self.folder(table), recursive=True)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.root).type != pafs.FileType.NotFound

    def _listing(self, table: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.folder(table), allow_not_found=True)
        return [i for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File]

    def parts(self, table: str = RESULTS_DIR) -> list[str]:
        """The complete parts of `table` (paths inside the filesystem, sorted by name)."""
        names = [i.path for i in self._listing(table)]
        return sorted(
            p for p in names if p.rsplit("/", 1)[-1].startswith("part-") and p.endswith(".parquet")
        )

    def read(self, table: str = RESULTS_DIR, columns: Sequence[str] | None = None) -> pa.Table:
        """All parts of `table` as one Arrow table (an empty one when there are none)."""
        parts = self.parts(table)
        if not parts:
            return timeline_schema().empty_table() if table == TIMELINE_DIR else pa.table({})
        cols = list(columns) if columns else None
        tables = [pq.read_table(p, columns=cols, filesystem=self.fs) for p in parts]
        return pa.concat_tables(tables, promote_options="default")

    def clean(self) -> None:
        """Remove what a killed run can leave: temporary files, and timeline parts whose results
        part was never moved into place (those inputs are not done and are analysed again)."""
        for table in (RESULTS_DIR, TIMELINE_DIR):
            for info in self._listing(table):
                if info.base_name.startswith(".") and info.base_name.endswith(".tmp"):
                    self.fs.delete_file(info.path)
        results = {p.rsplit("/", 1)[-1] for p in self.parts()}
        for part in self.parts(TIMELINE_DIR):
            if part.rsplit("/", 1)[-1] not in results:
                self.fs.delete_file(part)

    def write(self, table: pa.Table, kind: str, name: str) -> str:
        """Write `table` as part `name` of `kind` (``results`` or ``timeline``): to a hidden
        temporary name first, then moved into place (readers skip the temporary name)."""
        folder = self.folder(kind)
        final = f"{folder}/{name}" if is_uri(self.location) else os.path.join(folder, name)
        tmp = (
            f"{folder}/.{name}.tmp"
            if is_uri(self.location)
            else os.path.join(folder, f".{name}.tmp")
        )
        pq.write_table(table, tmp, filesystem=self.fs)
        self.fs.move(tmp, final)
        return final


__all__ = [
    "BUCKET_SCHEMES",
    "SCHEMES",
    "ResultsStore",
    "file_info",
    "is_uri",
    "join_uri",
    "open_location",
    "uri_of",
    "uri_parent",
]
