"""Reading parsed YAML/JSON data into classes and compounds, rejecting wrong shapes early."""

from __future__ import annotations

from collections.abc import Mapping, Sized
from typing import Any

from emoclip.classes.base import ClassSetError, Compound, EmotionClass, Limits
from emoclip.classes.messages import describe, quote, show_key

_TOP_KEYS = ("name", "classes", "compounds")


def read_data(data: Any, limits: Limits) -> tuple[Any, list[EmotionClass], list[Compound]]:
    """Parsed data -> (set name or None, classes, compounds); raise on a wrong shape.

    Collections are size-checked before they are walked, so huge or alias-heavy input is
    rejected early.
    """
    if data is None:
        raise ClassSetError("the class set is empty: it needs classes with descriptions")
    if isinstance(data, list):
        return None, _read_class_list(data, limits), []
    if not isinstance(data, Mapping):
        raise ClassSetError(
            f"expected a mapping of class names to descriptions, got {describe(data)}"
        )
    if "classes" not in data:  # the authors' flat format: every key is a class
        return None, _read_class_map(data, limits, flat=True), []
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise ClassSetError(
            f"unknown top-level key {show_key(unknown[0])}; a class set file has "
            "'name', 'classes' and 'compounds'"
        )
    classes = data["classes"]
    if isinstance(classes, list):
        read = _read_class_list(classes, limits)
    elif isinstance(classes, Mapping):
        read = _read_class_map(classes, limits, flat=False)
    else:
        raise ClassSetError(
            f"'classes' must be a mapping of class names to descriptions, got {describe(classes)}"
        )
    return data.get("name"), read, _read_compounds(data.get("compounds"), limits)


def _check_count(what: str, items: Sized, limit: int) -> None:
    if len(items) > limit:
        raise ClassSetError(f"too many {what}: {len(items)} (the limit is {limit})")


def _read_class_map(data: Mapping, limits: Limits, *, flat: bool) -> list[EmotionClass]:
    _check_count("classes", data, limits.max_classes)
    classes = []
    for key, value in data.items():
        name = _key_text(key, "class names")
        classes.append(EmotionClass(name, _read_descriptions(name, value, limits, flat=flat)))
    return classes


def _read_class_list(items: list, limits: Limits) -> list[EmotionClass]:
    _check_count("classes", items, limits.max_classes)
    classes = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            raise ClassSetError(
                f"class {number}: expected a mapping with 'name' and 'descriptions', "
                f"got {describe(item)}"
            )
        unknown = [key for key in item if key not in ("name", "descriptions", "description")]
        if unknown or "name" not in item:
            raise ClassSetError(
                f"class {number}: expected the keys 'name' and 'descriptions'"
                + (f", got {show_key(unknown[0])}" if unknown else "")
            )
        name = item["name"]
        if not isinstance(name, str):
            raise ClassSetError(f"class {number}: the name must be text, got {describe(name)}")
        value = item.get("descriptions", item.get("description"))
        classes.append(EmotionClass(name, _read_descriptions(name, value, limits, flat=False)))
    return classes


def _read_descriptions(name: str, value: Any, limits: Limits, *, flat: bool) -> tuple:
    label = f"class {quote(name)}"
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        _check_count(f"descriptions for {label}", value, limits.max_descriptions)
        for number, text in enumerate(value, 1):
            if not isinstance(text, str):
                raise ClassSetError(
                    f"{label}: description {number} must be text, got {describe(text)}"
                )
        return tuple(value)
    structured = flat and isinstance(value, Mapping)
    hint = " (a structured class set file needs a top-level 'classes' key)" if structured else ""
    raise ClassSetError(
        f"{label}: descriptions must be text or a list of text, got {describe(value)}{hint}"
    )


def _read_compounds(data: Any, limits: Limits) -> list[Compound]:
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ClassSetError(
            f"'compounds' must be a mapping of compound names to their classes, "
            f"got {describe(data)}"
        )
    _check_count("compounds", data, limits.max_classes)
    compounds = []
    for key, value in data.items():
        name = _key_text(key, "compound names")
        compounds.append(Compound(name, *_read_parts(name, value, limits)))
    return compounds


def _read_parts(name: str, value: Any, limits: Limits) -> tuple[tuple, tuple | None]:
    label = f"compound {quote(name)}"
    if isinstance(value, list):
        _check_count(f"parts in {label}", value, limits.max_compound_parts)
        for number, part in enumerate(value, 1):
            if not isinstance(part, str):
                raise ClassSetError(
                    f"{label}: part {number} must be a class name, got {describe(part)}"
                )
        return tuple(value), None
    if isinstance(value, Mapping):
        _check_count(f"parts in {label}", value, limits.max_compound_parts)
        for part, weight in value.items():
            _key_text(part, f"{label}: class names")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ClassSetError(
                    f"{label}: the weight of {quote(part)} must be a number, got {describe(weight)}"
                )
        return tuple(value), tuple(value.values())
    raise ClassSetError(
        f"{label}: expected a list of class names or a mapping of class names to weights, "
        f"got {describe(value)}"
    )


def _key_text(key: Any, what: str) -> str:
    if isinstance(key, str):
        return key
    raise ClassSetError(f"{what} must be text, got {describe(key)}; put it in quotes")
