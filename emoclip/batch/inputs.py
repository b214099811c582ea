"""Expanding batch INPUTS (files, folders, manifests) into input rows with resume keys.

Rules:
  * a video file (`VIDEO_EXTS`) is one input of kind "video"; an image file (`IMAGE_EXTS`) one of
    kind "image" (a photo: analysed as `emoclip predict` does, every face);
  * a folder is searched recursively: every video is an input; a folder whose files are images and
    which holds no video and no sub-folder is a *frame folder*, one input of kind "frames" (its
    images, sorted by name, are the clip's frames); images beside videos or sub-folders are single
    images;
  * a manifest (``.csv``, ``.parquet``, ``.jsonl``) lists inputs in a path column (``path``, else
    ``video``, ``file``, ``filename`` or ``clip``); relative paths are relative to the manifest's
    folder; every other column is carried through to the results with its type.

An input's key is a hash of its absolute path, size and modification time (for a frame folder, the
sum of its images' sizes and their latest modification time), so an edited or replaced file is
analysed again while an unchanged one is skipped on resume.

Every input, folder and manifest may also be a URI of a filesystem pyarrow understands
(``s3://bucket/clips/``, ``gs://...``, ``hdfs://...``, ``file:///...``; `store.open_location`):
the same rules apply, a row's ``path`` is then the input's URI, and a manifest's relative paths
are relative to the manifest's folder URI.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from emoclip.batch.schema import INPUT_COLUMNS, input_schema
from emoclip.batch.store import is_uri, join_uri, open_location, uri_of, uri_parent

VIDEO_EXTS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MANIFEST_EXTS = frozenset({".csv", ".parquet", ".jsonl"})
PATH_COLUMNS = ("path", "video", "file", "filename", "clip")


class InputError(ValueError):
    """An INPUT cannot be listed (missing, unsupported type, manifest without a path column)."""


def input_key(path: str, size: int, mtime_ns: int) -> str:
    """The resume key of an input: sha1 of its absolute path, size and modification time."""
    return hashlib.sha1(
        f"{path}\0{size}\0{mtime_ns}".encode("utf-8", "surrogateescape")
    ).hexdigest()


def _kind(path: Path) -> str | None:
    if path.is_dir():
        return "frames"
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_EXTS else "image" if suffix in IMAGE_EXTS else None


def frame_files(folder: Path) -> list[Path]:
    """The images of a frame folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _stat(path: Path, kind: str) -> tuple[int, int]:
    if kind == "frames":
        stats = [p.stat() for p in frame_files(path)]
        return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _row(path: Path, kind: str | None = None) -> dict:
    """One input row; a missing or unreadable input still gets a row (its error is reported later)."""
    path = Path(os.path.abspath(path))
    kind = kind or _kind(path) or "video"
    try:
        size, mtime = _stat(path, kind)
    except OSError:
        size, mtime = -1, -1
    text = str(path)
    return {
        "path": text,
        "name": path.name,
        "kind": kind,
        "size": size,
        "mtime_ns": mtime,
        "input_key": input_key(text, size, mtime),
    }


def _walk(folder: Path) -> Iterable[dict]:
    """Inputs found under `folder` (see the module docstring), sorted by path."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        here = Path(root)
        names = sorted(files)
        has_video = any(Path(f).suffix.lower() in VIDEO_EXTS for f in names)
        images = [f for f in names if Path(f).suffix.lower() in IMAGE_EXTS]
        if images and not has_video and not dirs:
            yield _row(here, "frames")
            continue
        for f in names:
            kind = _kind(here / f)
            if kind in ("video", "image"):
                yield _row(here / f, kind)


def _uri_row(uri: str, kind: str | None = None) -> dict:
    """One input row of a URI (a missing one gets size -1, its error reported later)."""
    fs, inner = open_location(uri)
    info = fs.get_file_info(inner)
    if kind is None:
        is_dir = info.type == pafs.FileType.Directory
        kind = "frames" if is_dir else _suffix_kind(inner) or "video"
    if kind == "frames":
        selector = pafs.FileSelector(inner, allow_not_found=True)
        files = [i for i in fs.get_file_info(selector) if _is_image(i)]
        size = sum(i.size or 0 for i in files) if files else -1
        mtime = max((i.mtime_ns or 0 for i in files), default=-1)
    elif info.type == pafs.FileType.File:
        size, mtime = int(info.size or 0), int(info.mtime_ns or 0)
    else:
        size, mtime = -1, -1
    name = posixpath.basename(inner.rstrip("/"))
    row = {"path": uri, "name": name, "kind": kind, "size": size, "mtime_ns": mtime}
    return row | {"input_key": input_key(uri, size, mtime)}


def _suffix_kind(name: str) -> str | None:
    suffix = posixpath.splitext(name)[1].lower()
    return "video" if suffix in VIDEO_EXTS else "image" if suffix in IMAGE_EXTS else None


def _is_image(info: pafs.FileInfo) -> bool:
    return info.type == pafs.FileType.File and _suffix_kind(info.base_name) == "image"


def _uri_input(uri: str) -> pa.Table | list[dict]:
    """The inputs of one URI item: a folder's (the rules of `_walk`), a manifest's, or a file."""
    fs, inner = open_location(uri)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"{uri}: no such file or folder")
    if info.type == pafs.FileType.File:
        if posixpath.splitext(inner)[1].lower() in MANIFEST_EXTS:
            return read_manifest(uri)
        if _suffix_kind(inner) is None:
            raise InputError(f"{info.base_name}: not a video, image, frame folder or manifest")
        return [_uri_row(uri)]
    files: dict[str, list[pafs.FileInfo]] = {inner: []}
    has_dirs: set[str] = set()
    for entry in fs.get_file_info(pafs.FileSelector(inner, recursive=True)):
        parent = posixpath.dirname(entry.path)
        if entry.type == pafs.FileType.Directory:
            has_dirs.add(parent)
            files.setdefault(entry.path, [])
        else:
            files.setdefault(parent, []).append(entry)
    rows = []
    for folder in sorted(files):
        entries = sorted(files[folder], key=lambda i: i.base_name)
        kinds = [_suffix_kind(i.base_name) for i in entries]
        if "image" in kinds and "video" not in kinds and folder not in has_dirs:
            rows.append(_uri_row(uri_of(folder, uri), "frames"))
            continue
        rows += [_uri_row(uri_of(i.path, uri), k) for i, k in zip(entries, kinds) if k]
    return rows


def read_manifest(path: str | Path) -> pa.Table:
    """A manifest as an Arrow table with the input columns first, then its extra columns.

    Raises:
        InputError: unreadable manifest, no path column, or an extra column named like one of
            the result columns.
    """
    import pyarrow.csv
    import pyarrow.json
    import pyarrow.parquet as pq

    text = str(path)
    fs, inner = open_location(text)
    path = Path(posixpath.basename(inner)) if is_uri(text) else Path(path)
    suffix = path.suffix.lower()
    try:
        with fs.open_input_file(inner) as fh:
            if suffix == ".csv":
                table = pyarrow.csv.read_csv(fh)
            elif suffix == ".parquet":
                table = pq.read_table(fh)
            else:
                table = pyarrow.json.read_json(fh)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path.name}: cannot read the manifest ({exc})") from None
    column = next((c for c in PATH_COLUMNS if c in table.column_names), None)
    if column is None:
        raise InputError(
            f"{path.name}: no path column; name one of {', '.join(PATH_COLUMNS)} "
            f"(columns: {', '.join(table.column_names[:10])})"
        )
    from emoclip.batch.schema import result_fields

    taken = set(INPUT_COLUMNS) | {f.name for f in result_fields(1)}
    extras = [c for c in table.column_names if c != column]
    clash = sorted(set(extras) & taken)
    if clash:
        raise InputError(
            f"{path.name}: manifest columns {clash} clash with result columns; rename them"
        )
    rows = []
    for value in table.column(column).to_pylist():
        if value is None or not str(value).strip():
            raise InputError(f"{path.name}: an empty path in column {column!r}")
        entry = str(value)
        if is_uri(entry):
            rows.append(_uri_row(entry))
        elif is_uri(text):  # relative to the manifest's folder URI
            rows.append(_uri_row(join_uri(uri_parent(text), entry)))
        else:
            p = Path(entry)
            rows.append(_row(p if p.is_absolute() else Path(text).parent / p))
    out = pa.Table.from_pylist(rows, schema=input_schema())
    for c in extras:
        out = out.append_column(table.schema.field(c), table.column(c).combine_chunks())
    return out


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> pa.Table:
    """INPUTS (files, folders, manifests) as one Arrow table of input rows, duplicates dropped.

    Returns:
        A table with `schema.INPUT_COLUMNS` then the manifests' extra columns (null where an
        input came from elsewhere). Manifests with different extra columns are merged.

    Raises:
        InputError: an input that does not exist, or a file of an unsupported type.
    """
    tables: list[pa.Table] = []
    plain: list[dict] = []
    for item in inputs:
        if is_uri(item):
            found = _uri_input(str(item))
            if isinstance(found, pa.Table):
                tables.append(found)
            else:
                plain.extend(found)
            continue
        path = Path(item)
        if path.is_dir():
            plain.extend(_walk(path))
        elif path.suffix.lower() in MANIFEST_EXTS and path.is_file():
            tables.append(read_manifest(path))
        elif path.is_file():
            if _kind(path) is None:
                raise InputError(
                    f"{path.name}: not a video, image, frame folder or manifest "
                    f"(.csv, .parquet, .jsonl)"
                )
            plain.append(_row(path))
        else:
            raise InputError(f"{item}: no such file or folder")
    if plain:
        tables.insert(0, pa.Table.from_pylist(plain, schema=input_schema()))
    if not tables:
        return input_schema().empty_table()
    table = pa.concat_tables(tables, promote_options="default")
    seen: set[str] = set()
    keep = []
    for i, key in enumerate(table.column("input_key").to_pylist()):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return table.take(pa.array(keep, type=pa.int64())) if len(keep) < len(table) else table


__all__ = [
    "IMAGE_EXTS",
    "MANIFEST_EXTS",
    "VIDEO_EXTS",
    "InputError",
    "expand_inputs",
    "frame_files",
    "input_key",
    "read_manifest",
]
