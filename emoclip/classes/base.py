"""The value types of a class set: its errors, limits, classes and compounds, and name helpers."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class ClassSetError(ValueError):
    """An invalid class set, or class-set text that cannot be read.

    The message says what is wrong (which class, which field, which limit) and is safe to show
    to a user (it is plain text; HTML-escape it if you render HTML).

    Attributes:
        problems: Every problem found, one message each (the message lists at most ten).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


class UnknownPresetError(ClassSetError, KeyError):
    """No preset has the requested name. Also a `KeyError`, as for a missing mapping key."""

    __str__ = ClassSetError.__str__  # KeyError.__str__ would repr() the message


@dataclass(frozen=True)
class Limits:
    """Size limits for class sets and class-set files.

    Attributes:
        max_classes: Most entries in the score vector: classes and compounds together.
        max_descriptions: Most descriptions per class.
        max_name_chars: Longest class, compound or set name, in characters.
        max_text_chars: Longest description, in characters.
        max_compound_parts: Most classes one compound combines.
        max_file_bytes: Largest class-set file or text, in UTF-8 bytes.
    """

    max_classes: int = 64
    max_descriptions: int = 16
    max_name_chars: int = 64
    max_text_chars: int = 1000
    max_compound_parts: int = 8
    max_file_bytes: int = 256_000


@dataclass(frozen=True)
class EmotionClass:
    """One class: a name and the descriptions the text encoder embeds for it.

    Attributes:
        name: Class name, shown to the user and used as the score's label.
        descriptions: One or more descriptions (a single string is taken as one description).
    """

    name: str
    descriptions: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", clean_text(self.name))
        descriptions = as_tuple(self.descriptions)
        if isinstance(descriptions, tuple):
            descriptions = tuple(clean_text(text) for text in descriptions)
        object.__setattr__(self, "descriptions", descriptions)


@dataclass(frozen=True)
class Compound:
    """A compound class: a mix of two or more classes of the same set.

    Attributes:
        name: Compound name (unique among the set's classes and compounds).
        parts: Names of the classes it combines (classes, not other compounds).
        weights: One positive weight per part, normalised at use; None for equal weights.
    """

    name: str
    parts: tuple[str, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", clean_text(self.name))
        parts = as_tuple(self.parts)
        if isinstance(parts, tuple):
            parts = tuple(clean_text(part) for part in parts)
        object.__setattr__(self, "parts", parts)
        weights = self.weights
        if isinstance(weights, (list, tuple)):
            weights = tuple(_as_float(weight) for weight in weights)
        object.__setattr__(self, "weights", weights)


class ClassSetParts(Protocol):
    """What validation reads of a class set (`ClassSet` has it): kept here so checks need no ClassSet."""

    @property
    def name(self) -> Any: ...

    @property
    def classes(self) -> Any: ...

    @property
    def compounds(self) -> Any: ...


def clean_text(text: Any) -> Any:
    """Strip surrounding whitespace and unify line ends; non-text is left for `check_class_set`."""
    if isinstance(text, str):
        return text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text


def as_tuple(items: Any) -> Any:
    if isinstance(items, str):
        return (items,)
    if isinstance(items, (list, tuple)):
        return tuple(items)
    return items


def as_sequence(items: Any) -> Any:
    """Any iterable but a string as a tuple (strings and non-iterables are left as they are)."""
    if isinstance(items, (str, bytes)):
        return items
    try:
        return tuple(items)
    except TypeError:
        return items


def _as_float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return value
    return value


def name_key(name: str) -> str:
    """Comparison key for names: stripped, caseless, canonically composed."""
    folded = unicodedata.normalize("NFD", name.strip()).casefold()
    return unicodedata.normalize("NFC", folded)


def find_index(items: Sequence[EmotionClass | Compound], name: Any) -> int | None:
    if not isinstance(name, str):
        return None
    key = name_key(name)
    for index, item in enumerate(items):
        if isinstance(item.name, str) and name_key(item.name) == key:
            return index
    return None
