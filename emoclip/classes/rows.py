"""Class sets as table rows (one [class, description] row per description) and back.

The app's class table and any spreadsheet-like editor use these; `parse_weights` reads the
compound weights a person types ("2, 1").
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from emoclip.classes.base import ClassSetError, Limits
from emoclip.classes.classset import ClassSet
from emoclip.classes.messages import quote


def class_rows(classes: ClassSet) -> list[list[str]]:
    """One [class, description] row per description."""
    return [[c.name, d] for c in classes.classes for d in c.descriptions]


def classes_from_rows(rows: Any, base: ClassSet, limits: Limits = Limits()) -> ClassSet:
    """Rebuild a class set from table rows, keeping `base`'s name and compounds.

    Rows are grouped by class name (first-seen order, ignoring case); rows with an empty
    description are dropped, and a class with a name but no description is an error (the
    message says so). Compounds of `base` whose parts all remain are kept. `rows` is a list of
    [name, description] lists (extra cells ignored, None and NaN read as empty) or a pandas
    DataFrame.

    Raises:
        ClassSetError: A description without a class name, or an invalid set.
    """
    if hasattr(rows, "values") and hasattr(rows, "columns"):  # a pandas DataFrame
        rows = rows.values.tolist()
    grouped: dict[str, list[str]] = {}
    display: dict[str, str] = {}
    for row in rows or []:
        cells = [
            ("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
            for v in list(row)[:2]
        ]
        cells += [""] * (2 - len(cells))
        name, text = cells[0].strip(), cells[1].strip()
        if not name and not text:
            continue
        if not name:
            raise ClassSetError(f"a description has no class name: {quote(text)}")
        key = name.casefold()
        display.setdefault(key, name)
        grouped.setdefault(key, [])
        if text:
            grouped[key].append(text)
    data: dict[str, Any] = {
        "name": base.name,
        "classes": {display[k]: v or "" for k, v in grouped.items()},
    }
    kept = [c for c in base.compounds if all(p.casefold() in grouped for p in c.parts)]
    if kept:
        data["compounds"] = {
            c.name: list(c.parts) if c.weights is None else dict(zip(c.parts, c.weights))
            for c in kept
        }
    return ClassSet.from_dict(data, limits=limits)


def parse_weights(text: str, parts: Sequence[str]) -> list[float] | None:
    """Compound weights typed as "0.6, 0.4" (one per chosen class); blank means equal weights.

    Raises:
        ValueError: Not numbers, not one per part, or not all positive and finite.
    """
    text = (text or "").strip()
    if not text:
        return None
    items = [t for t in re.split(r"[,;\s]+", text) if t]
    try:
        weights = [float(t) for t in items]
    except ValueError:
        raise ValueError(
            f"weights must be numbers separated by commas, e.g. 2, 1 (got {quote(text)})"
        ) from None
    if len(weights) != len(parts):
        raise ValueError(
            f"give one weight per chosen class: {len(parts)} classes, {len(weights)} weights"
        )
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError("weights must be positive numbers")
    return weights
