"""Saving and loading explorer embeddings; loading is for untrusted uploads.

``np.load(..., allow_pickle=False)``, size / point / dimension limits checked before data are used,
and ``media`` is never read from a file (a path from an upload must not decide which server file
gets shown); saving never writes ``media`` either.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoclip.explore.points import (
    KINDS,
    MAX_HOVER_CHARS,
    MAX_ID_CHARS,
    LatentPoint,
    stack_embeddings,
)


def save_embeddings(path: str | Path, points: Sequence[LatentPoint]) -> Path:
    """Write points to ``.npz`` (arrays ids, kinds, labels, hovers, embeddings) or ``.json``.

    A path without either suffix gets ``.npz``. Strings are stored as fixed-width unicode arrays,
    so the file loads with ``allow_pickle=False``. ``media`` is not written. Returns the path.
    """
    path = Path(path)
    emb = stack_embeddings(points)
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or infinite values")
    if path.suffix.lower() == ".json":
        data = [
            {
                "id": p.id,
                "kind": p.kind,
                "label": p.label,
                "hover": p.hover,
                "embedding": [float(v) for v in e],
            }
            for p, e in zip(points, emb)
        ]
        path.write_text(json.dumps(data), encoding="utf-8")
        return path
    if path.suffix.lower() != ".npz":
        path = path.with_name(path.name + ".npz")

    def strings(values: list[str]) -> np.ndarray:
        return np.array([str(v) for v in values], dtype=np.str_)

    with path.open("wb") as f:
        np.savez_compressed(
            f,
            ids=strings([p.id for p in points]),
            kinds=strings([p.kind for p in points]),
            labels=strings([p.label for p in points]),
            hovers=strings([p.hover for p in points]),
            embeddings=emb,
        )
    return path


def _check_loaded(
    emb: np.ndarray, *, source: str, expected_dim: int | None, max_points: int
) -> np.ndarray:
    if emb.dtype.kind not in "fiu":
        raise ValueError(f"{source}: embeddings must be numbers, got dtype {emb.dtype}")
    if emb.ndim != 2:
        raise ValueError(f"{source}: embeddings must be a 2-D (N, D) array, got shape {emb.shape}")
    n, d = emb.shape
    if n == 0:
        raise ValueError(f"{source}: no embeddings")
    if n > max_points:
        raise ValueError(f"{source}: {n} points is more than the limit of {max_points}")
    if d < 1:
        raise ValueError(f"{source}: embeddings have dimension 0")
    if expected_dim is not None and d != expected_dim:
        raise ValueError(
            f"{source}: embeddings have dimension {d}, but the model's embeddings "
            f"have dimension {expected_dim}"
        )
    emb = emb.astype(np.float32)
    if not np.isfinite(emb).all():
        bad = int((~np.isfinite(emb)).any(axis=1).sum())
        raise ValueError(f"{source}: embeddings contain NaN or infinite values ({bad} rows)")
    return emb


def _strings(value: Any, n: int, name: str, source: str) -> list[str] | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "US" or arr.shape != (n,):
        raise ValueError(
            f"{source}: '{name}' must be {n} strings, got dtype {arr.dtype} and shape {arr.shape}"
        )
    return [str(v) for v in arr.tolist()]


def _make_points(
    emb: np.ndarray,
    ids: list[str] | None,
    labels: list[str] | None,
    kinds: list[str] | None,
    hovers: list[str] | None,
    kind: str | None,
) -> list[LatentPoint]:
    n = len(emb)
    ids = ids or [f"uploaded-{i}" for i in range(n)]
    labels = labels or list(ids)
    points = []
    for i in range(n):
        k = kind or (kinds[i] if kinds and kinds[i] in KINDS else "uploaded")
        points.append(
            LatentPoint(
                id=ids[i][:MAX_ID_CHARS],
                kind=k,
                label=(labels[i] or ids[i])[:MAX_ID_CHARS],
                embedding=np.ascontiguousarray(emb[i]),
                hover=(hovers[i][:MAX_HOVER_CHARS] if hovers else ""),
            )
        )
    return points


def _check_npy_header(fp: Any, available: int, source: str) -> None:
    """Read a .npy header from `fp` and refuse arrays larger than the `available` data bytes.

    ``np.load`` allocates ``prod(shape) * itemsize`` bytes from the header before it reads the
    data, so a 100-byte file declaring a shape of (10**8, 10**8) would raise MemoryError (or
    reserve gigabytes) instead of a clear error.
    """
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(fp)
        read_header = (
            npy_format.read_array_header_1_0
            if version == (1, 0)
            else npy_format.read_array_header_2_0
        )
        shape, _, dtype = read_header(fp)
    except (ValueError, TypeError, SyntaxError, EOFError, OSError) as exc:
        raise ValueError(f"{source}: not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(f"{source}: contains an object (pickled) array, which is refused")
    count = 1
    for side in shape:
        count *= int(side)
    if count * dtype.itemsize > available:
        raise ValueError(
            f"{source}: its header declares a {'x'.join(map(str, shape)) or 'scalar'} "
            f"array, more data than the file holds"
        )


def _load_npz(path: Path, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path.name}: not a valid .npz file ({exc})") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise ValueError(
                f"{path.name}: uncompressed size {total} bytes is more than the "
                f"limit of {max_bytes}"
            )
        names = [i.filename for i in infos]
        if not names or not all(n.endswith(".npy") for n in names):
            raise ValueError(f"{path.name}: not a numpy .npz archive (members: {names[:5]})")
        try:
            for info in infos:
                with zf.open(info) as member:
                    _check_npy_header(member, info.file_size, f"{path.name}: {info.filename}")
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
            raise ValueError(f"{path.name}: cannot be read as .npz ({exc})") from None
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                out[key] = data[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ValueError(
                f"{path.name}: contains object (pickled) arrays, which are refused; "
                "save plain numeric and string arrays"
            ) from None
        raise ValueError(f"{path.name}: cannot be read as .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path.name}: cannot be read as .npz ({exc})") from None
    return out


def _parse_floats(cells: list[str]) -> list[float] | None:
    try:
        return [float(c) for c in cells]
    except ValueError:
        return None


def _load_csv(
    path: Path, expected_dim: int | None, max_points: int
) -> tuple[np.ndarray, list[str] | None]:
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path.name}: empty CSV")
    if _parse_floats(rows[0][1:]) is None:  # a header row
        rows = rows[1:]
    if len(rows) > max_points:
        raise ValueError(f"{path.name}: {len(rows)} points is more than the limit of {max_points}")
    if not rows:
        raise ValueError(f"{path.name}: no data rows")
    width = len(rows[0])
    # The first column is an id/label, unless every cell is a number and the row width equals the
    # expected dimension (a bare N x D table).
    has_id = not (
        expected_dim is not None
        and width == expected_dim
        and all(_parse_floats(r) is not None for r in rows)
    )
    names: list[str] | None = [] if has_id else None
    values = []
    for line, r in enumerate(rows, 1):
        if len(r) != width:
            raise ValueError(
                f"{path.name}: data row {line} has {len(r)} columns, the first has {width}"
            )
        cells = r[1:] if has_id else r
        nums = _parse_floats(cells)
        if nums is None:
            raise ValueError(f"{path.name}: data row {line} has a non-numeric embedding value")
        if names is not None:
            names.append(r[0].strip())
        values.append(nums)
    emb = np.asarray(values, dtype=np.float64)
    if has_id and emb.shape[1] == 0:
        raise ValueError(f"{path.name}: rows need an id/label column and embedding columns")
    return emb, names


def _load_json(path: Path) -> tuple[np.ndarray, dict[str, list[str] | None]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path.name}: invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # bad UTF-8, bad syntax, an integer with thousands of digits
        raise ValueError(f"{path.name}: invalid JSON ({exc})") from None
    if isinstance(data, dict) and "points" in data:
        data = data["points"]
    if not isinstance(data, list) or not data:
        raise ValueError(
            f'{path.name}: expected a non-empty list of {{"id", "label", "embedding"}} objects'
        )
    fields: dict[str, list[str]] = {"id": [], "label": [], "kind": [], "hover": []}
    present = dict.fromkeys(fields, False)
    rows = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "embedding" not in item:
            raise ValueError(f"{path.name}: item {i} must be an object with an 'embedding'")
        vec = np.asarray(item["embedding"]) if isinstance(item["embedding"], list) else None
        if vec is None or vec.ndim != 1 or vec.dtype.kind not in "fiu":
            raise ValueError(f"{path.name}: item {i}: 'embedding' must be a flat list of numbers")
        rows.append(vec)
        for key in fields:
            v = item.get(key)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{path.name}: item {i}: '{key}' must be a string")
            present[key] |= v is not None
            fields[key].append(v if v is not None else "")
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        raise ValueError(f"{path.name}: embeddings have different dimensions: {sorted(dims)[:5]}")
    emb = np.stack(rows).astype(np.float64)
    ids = [v or f"uploaded-{i}" for i, v in enumerate(fields["id"])] if present["id"] else None
    labels = fields["label"] if present["label"] else None
    return emb, {
        "ids": ids,
        "labels": labels,
        "kinds": fields["kind"] if present["kind"] else None,
        "hovers": fields["hover"] if present["hover"] else None,
    }


_Meta = dict[str, list[str] | None]


def _read_npy(path: Path, size: int) -> np.ndarray:
    """One numeric ``.npy`` array, its header checked first; pickled object arrays refused."""
    src = path.name
    with path.open("rb") as fp:
        _check_npy_header(fp, size, src)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ValueError(
                f"{src}: contains an object (pickled) array, which is refused"
            ) from None
        raise ValueError(f"{src}: cannot be read as .npy ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{src}: cannot be read as .npy ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{src}: not a single .npy array")
    return arr


def _read_points(
    path: Path, size: int, expected_dim: int | None, max_points: int, max_bytes: int
) -> tuple[np.ndarray, _Meta]:
    """The checked (N, D) embeddings of a file and its per-point fields, by the file's suffix."""
    suffix = path.suffix.lower()
    src = path.name
    meta: _Meta = {"ids": None, "labels": None, "kinds": None, "hovers": None}
    limits: dict[str, Any] = dict(source=src, expected_dim=expected_dim, max_points=max_points)
    if suffix == ".npz":
        arrays = _load_npz(path, max_bytes)
        if "embeddings" not in arrays:
            raise ValueError(f"{src}: no 'embeddings' array (found {sorted(arrays)[:10]})")
        emb = _check_loaded(arrays["embeddings"], **limits)
        for key in ("ids", "labels", "kinds", "hovers"):
            meta[key] = _strings(arrays.get(key), len(emb), key, src)
    elif suffix == ".npy":
        emb = _check_loaded(_read_npy(path, size), **limits)
    elif suffix == ".csv":
        try:
            raw, meta["ids"] = _load_csv(path, expected_dim, max_points)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{src}: not UTF-8 text ({exc})") from None
        except csv.Error as exc:
            raise ValueError(f"{src}: invalid CSV ({exc})") from None
        emb = _check_loaded(raw, **limits)
        if meta["ids"] is not None:
            meta["labels"] = list(meta["ids"])
            meta["ids"] = _unique(meta["ids"])
    elif suffix == ".json":
        raw, meta = _load_json(path)
        emb = _check_loaded(raw, **limits)
    else:
        raise ValueError(
            f"{src}: unsupported file type {suffix or '(none)'!r}; use .npz, .npy, .csv or .json"
        )
    return emb, meta


def load_embeddings(
    path: str | Path,
    *,
    expected_dim: int | None = None,
    max_points: int = 5000,
    max_bytes: int = 50_000_000,
    kind: str | None = None,
) -> list[LatentPoint]:
    """Read embeddings from an (untrusted) file.

    Formats, by suffix:
      * ``.npz`` as written by :func:`save_embeddings` (``embeddings`` required; ``ids``,
        ``labels``, ``kinds``, ``hovers`` optional string arrays). Loaded with
        ``allow_pickle=False``; object arrays are refused.
      * ``.npy``: an (N, D) numeric array; ids and labels ``uploaded-0``, ``uploaded-1``, ...
      * ``.csv``: one row per point, first column the id (also used as label), then D numbers;
        an optional header row. A bare all-numeric table is accepted when its width equals
        ``expected_dim``.
      * ``.json``: ``[{"id", "label", "embedding": [...], "kind"?, "hover"?}, ...]`` (or
        ``{"points": [...]}``).

    ``kind`` forces the kind of every point (the app passes "uploaded"); otherwise kinds stored in
    the file are kept when valid and "uploaded" is used for the rest. ``media`` is always None.

    Raises:
        ValueError: missing file, unsupported suffix, file larger than ``max_bytes``, more than
            ``max_points`` points, dimension different from ``expected_dim``, NaN/inf,
            non-numeric data, pickled objects, inconsistent field lengths.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not path.is_file():
        raise ValueError(f"{path.name}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path.name}: file is {size} bytes, more than the limit of {max_bytes}")
    emb, meta = _read_points(path, size, expected_dim, max_points, max_bytes)
    return _make_points(emb, meta["ids"], meta["labels"], meta["kinds"], meta["hovers"], kind)


def _unique(names: list[str]) -> list[str]:
    """Keep names that are unique; suffix repeats with '#row' so ids stay distinct."""
    counts: dict[str, int] = {}
    for nme in names:
        counts[nme] = counts.get(nme, 0) + 1
    return [
        nme if counts[nme] == 1 and nme else f"{nme or 'uploaded'}#{i}"
        for i, nme in enumerate(names)
    ]
