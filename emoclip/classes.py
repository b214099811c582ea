"""Class sets: the emotion classes a video is scored against.

A `ClassSet` is an ordered tuple of `EmotionClass` (a name and one or more natural-language
descriptions for the text encoder), followed by optional `Compound` classes, each a (weighted)
mix of two or more of the set's classes. `ClassSet.names` is the order of the score vector.

Class sets are immutable. Everything that reads outside input (`from_dict`, `parse`, `load`, ...)
and every edit (`with_class`, `without`, `renamed`, `with_compound`) returns a validated set or
raises `ClassSetError`, whose message says what is wrong and is safe to show to a user. Names
and descriptions are stripped of surrounding whitespace (and ``\\r\\n`` becomes ``\\n``);
anything else, HTML and Markdown included, is kept verbatim: escaping is the UI's job.

File format (YAML or JSON, the same structure)::

    name: my-set                                     # optional
    classes:
      anger: "A facial expression showing ..."       # one description, or
      happiness: ["description 1", "description 2"] # several
    compounds:                                       # optional
      happily surprised: [happiness, surprise]       # equal weights, or
      bittersweet: {happiness: 0.6, sadness: 0.4}    # weights (normalised at use)

Also read: the authors' flat ``class_descriptions.yml`` (a top-level mapping of class name to
description, no ``classes`` key), and a list of ``{name: ..., descriptions: [...]}`` entries, at
the top level or under ``classes``. Compound parts are matched to class names ignoring case.

Presets (`preset`, `preset_names`) are YAML files in ``emoclip/presets``, read on first use.
"""

from __future__ import annotations

import datetime
import json
import math
import unicodedata
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .tokenizer import CONTEXT_LENGTH, count_tokens

__all__ = [
    "ClassSet",
    "ClassSetError",
    "Compound",
    "EmotionClass",
    "Limits",
    "UnknownPresetError",
    "preset",
    "preset_names",
]

_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_TOP_KEYS = ("name", "classes", "compounds")
_DEFAULT_NAME = "custom"
_SHOWN_CHARS = 40  # longest name quoted in full in a message
_SHOWN_PROBLEMS = 10  # problems listed in one ClassSetError message
_PRESET_PACKAGE = "emoclip"
_PRESET_DIR = "presets"
_PRESET_ALIASES = {"ferv39k-7": "dfew-7", "afew-7": "dfew-7"}  # same classes and order as DFEW


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
        object.__setattr__(self, "name", _clean(self.name))
        descriptions = _as_tuple(self.descriptions)
        if isinstance(descriptions, tuple):
            descriptions = tuple(_clean(text) for text in descriptions)
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
        object.__setattr__(self, "name", _clean(self.name))
        parts = _as_tuple(self.parts)
        if isinstance(parts, tuple):
            parts = tuple(_clean(part) for part in parts)
        object.__setattr__(self, "parts", parts)
        weights = self.weights
        if isinstance(weights, (list, tuple)):
            weights = tuple(_as_float(weight) for weight in weights)
        object.__setattr__(self, "weights", weights)


@dataclass(frozen=True)
class ClassSet:
    """An ordered set of emotion classes, then compounds, with their descriptions.

    Construct it with `from_dict`, `parse`, `load` or `preset` (all validated), or directly
    and then call `validate`.

    Attributes:
        name: Name of the set (a preset's name, a file's name, or "custom").
        classes: The classes, in score order.
        compounds: The compounds, scored after the classes.
    """

    name: str
    classes: tuple[EmotionClass, ...]
    compounds: tuple[Compound, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _clean(self.name))
        object.__setattr__(self, "classes", _as_tuple(self.classes))
        object.__setattr__(self, "compounds", _as_tuple(self.compounds))

    @property
    def names(self) -> list[str]:
        """Class names, then compound names: the order of the score vector."""
        return [c.name for c in self.classes] + [c.name for c in self.compounds]

    @property
    def texts(self) -> list[str]:
        """Every distinct description, in first-seen order: what the text encoder embeds."""
        return list(dict.fromkeys(text for c in self.classes for text in c.descriptions))

    def validate(self, limits: Limits = Limits()) -> list[str]:
        """Check the set and report what may not work as the user expects.

        Args:
            limits: Size limits to enforce.

        Returns:
            Human-readable warnings (for example a description longer than the text encoder's
            77 token positions, which it truncates); empty if there is nothing to say.

        Raises:
            ClassSetError: The set is invalid; the message lists the problems.
        """
        _check(self, limits)
        return _warnings(self)

    # ---- immutable edits -------------------------------------------------------------------

    def with_class(
        self, name: str, descriptions: str | Sequence[str], *, limits: Limits = Limits()
    ) -> ClassSet:
        """Add a class at the end, or replace the descriptions of an existing one.

        Args:
            name: Class name. If a class of that name exists (ignoring case), its descriptions
                are replaced; it keeps its name and position.
            descriptions: One description, or several.
            limits: Size limits to enforce.

        Returns:
            A new validated set.

        Raises:
            ClassSetError: The result would be invalid (e.g. `name` is a compound's name).
        """
        new = EmotionClass(name, _sequence(descriptions))
        index = _find(self.classes, new.name)
        classes = list(self.classes)
        if index is None:
            classes.append(new)
        else:
            classes[index] = replace(new, name=classes[index].name)
        return _checked(replace(self, classes=tuple(classes)), limits)

    def without(self, name: str, *, cascade: bool = True, limits: Limits = Limits()) -> ClassSet:
        """Remove a class or a compound.

        Removing a class also removes the compounds that use it (with ``cascade=False`` that is
        an error instead, naming those compounds).

        Args:
            name: Name of the class or compound (ignoring case).
            cascade: Whether to drop the compounds that use a removed class.
            limits: Size limits to enforce.

        Returns:
            A new validated set.

        Raises:
            ClassSetError: No such class or compound, compounds use it and ``cascade`` is
                False, or the result would be invalid (e.g. no classes left).
        """
        compound = _find(self.compounds, name)
        if compound is not None:
            compounds = self.compounds[:compound] + self.compounds[compound + 1 :]
            return _checked(replace(self, compounds=compounds), limits)
        index = self._class_index(name)
        removed = self.classes[index].name
        users = [c for c in self.compounds if removed in c.parts]
        if users and not cascade:
            raise ClassSetError(
                f"class {_quote(removed)} is used by compound(s) "
                f"{', '.join(_quote(c.name) for c in users)}; remove them first"
            )
        classes = self.classes[:index] + self.classes[index + 1 :]
        compounds = tuple(c for c in self.compounds if c not in users)
        return _checked(ClassSet(self.name, classes, compounds), limits)

    def renamed(self, old: str, new: str, *, limits: Limits = Limits()) -> ClassSet:
        """Rename a class (updating the compounds that use it) or a compound.

        Args:
            old: Current name (ignoring case).
            new: New name.
            limits: Size limits to enforce.

        Returns:
            A new validated set.

        Raises:
            ClassSetError: No such class or compound, or the new name is invalid or taken.
        """
        compound = _find(self.compounds, old)
        if compound is not None:
            compounds = list(self.compounds)
            compounds[compound] = replace(compounds[compound], name=new)
            return _checked(replace(self, compounds=tuple(compounds)), limits)
        index = self._class_index(old)
        current = self.classes[index].name
        classes = list(self.classes)
        classes[index] = replace(classes[index], name=new)
        new_name = classes[index].name
        compounds = tuple(
            replace(c, parts=tuple(new_name if p == current else p for p in c.parts))
            for c in self.compounds
        )
        return _checked(ClassSet(self.name, tuple(classes), compounds), limits)

    def with_compound(
        self,
        name: str,
        parts: Sequence[str],
        weights: Sequence[float] | None = None,
        *,
        limits: Limits = Limits(),
    ) -> ClassSet:
        """Add a compound at the end, or replace the compound of that name (same position).

        Args:
            name: Compound name; must differ from every class name.
            parts: Names of two or more classes of the set (matched ignoring case).
            weights: One positive weight per part (normalised at use), or None for equal.
            limits: Size limits to enforce.

        Returns:
            A new validated set.

        Raises:
            ClassSetError: The compound is invalid (unknown part, bad weights, name taken...).
        """
        new = Compound(name, _sequence(parts), None if weights is None else _sequence(weights))
        new = replace(new, parts=_resolve_parts(new.parts, self.classes))
        index = _find(self.compounds, new.name)
        compounds = list(self.compounds)
        if index is None:
            compounds.append(new)
        else:
            compounds[index] = new
        return _checked(replace(self, compounds=tuple(compounds)), limits)

    def _class_index(self, name: str) -> int:
        index = _find(self.classes, name)
        if index is None:
            raise ClassSetError(f"there is no class or compound named {_quote(name)}")
        return index

    # ---- dict, YAML, JSON, files ---------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Any, *, name: str | None = None, limits: Limits = Limits()
    ) -> ClassSet:
        """Build a set from parsed YAML/JSON data (see the module docstring for the formats).

        Args:
            data: A mapping (``classes``/``compounds``/``name``, or the flat name -> text
                form) or a list of ``{name, descriptions}`` entries.
            name: Set name, overriding the data's ``name`` (default "custom").
            limits: Size limits to enforce.

        Returns:
            A validated set.

        Raises:
            ClassSetError: The data has the wrong shape or describes an invalid set.
        """
        return _build(data, name=name, default_name=_DEFAULT_NAME, limits=limits)

    def to_dict(self) -> dict[str, Any]:
        """The set in the file format: one description as a string, several as a list."""
        data: dict[str, Any] = {
            "name": self.name,
            "classes": {
                c.name: c.descriptions[0] if len(c.descriptions) == 1 else list(c.descriptions)
                for c in self.classes
            },
        }
        if self.compounds:
            data["compounds"] = {
                c.name: list(c.parts) if c.weights is None else dict(zip(c.parts, c.weights))
                for c in self.compounds
            }
        return data

    @classmethod
    def parse(cls, text: str, *, name: str | None = None, limits: Limits = Limits()) -> ClassSet:
        """Read a set from YAML or JSON text (JSON-style errors when it starts with { or [).

        Args:
            text: The file's text.
            name: Set name, overriding the text's ``name``.
            limits: Size limits to enforce (including `Limits.max_file_bytes` on the text).

        Returns:
            A validated set.

        Raises:
            ClassSetError: Unreadable text (with line and column where known) or invalid set.
        """
        return cls.from_dict(_load_text(text, "auto", limits), name=name, limits=limits)

    @classmethod
    def from_yaml(
        cls, text: str, *, name: str | None = None, limits: Limits = Limits()
    ) -> ClassSet:
        """Read a set from YAML text. See `parse`."""
        return cls.from_dict(_load_text(text, "yaml", limits), name=name, limits=limits)

    @classmethod
    def from_json(
        cls, text: str, *, name: str | None = None, limits: Limits = Limits()
    ) -> ClassSet:
        """Read a set from JSON text. See `parse`."""
        return cls.from_dict(_load_text(text, "json", limits), name=name, limits=limits)

    def to_yaml(self) -> str:
        """The set as YAML (UTF-8 text kept as is, one line per description)."""
        return yaml.dump(
            _yaml_ready(self.to_dict()),
            Dumper=_YamlDumper,
            sort_keys=False,
            allow_unicode=True,
            width=1_000_000,
            default_flow_style=False,
        )

    def to_json(self) -> str:
        """The set as indented JSON (non-ASCII text kept as is)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def load(cls, path: str | Path, *, limits: Limits = Limits()) -> ClassSet:
        """Read a ``.yaml``, ``.yml`` or ``.json`` file (UTF-8, at most `max_file_bytes`).

        Args:
            path: The file. Its stem names the set unless the file has a ``name``.
            limits: Size limits to enforce.

        Returns:
            A validated set.

        Raises:
            ClassSetError: Wrong extension, unreadable, too large, not UTF-8, or invalid.
        """
        path = Path(path)
        fmt = _format_of(path)
        text = _read_file(path, limits)
        stem = path.stem.strip()[: limits.max_name_chars] or _DEFAULT_NAME
        default = _DEFAULT_NAME if _bad_char(stem) else stem
        return _build(_load_text(text, fmt, limits), name=None, default_name=default, limits=limits)

    def save(self, path: str | Path, *, limits: Limits = Limits()) -> None:
        """Write the set as YAML or JSON, chosen by the extension (.yaml, .yml, .json).

        Args:
            path: Destination file (overwritten).
            limits: Its `max_file_bytes` must allow `load` to read the file back.

        Raises:
            ClassSetError: Unsupported extension or the file would be too large.
            OSError: The file cannot be written.
        """
        path = Path(path)
        text = self.to_yaml() if _format_of(path) == "yaml" else self.to_json()
        size = len(text.encode("utf-8"))
        if size > limits.max_file_bytes:
            raise ClassSetError(
                f"the class set would be a {_kb(size)} file; the limit is "
                f"{_kb(limits.max_file_bytes)}"
            )
        path.write_text(text, encoding="utf-8")


# ---- presets ---------------------------------------------------------------------------------


def preset_names() -> list[str]:
    """Names of the bundled class-set presets (aliases included), sorted."""
    return sorted([*_preset_files(), *_PRESET_ALIASES], key=str.casefold)


def preset(name: str) -> ClassSet:
    """A bundled class-set preset, by name (ignoring case).

    Args:
        name: One of `preset_names()`, e.g. "mafw-11" or "dfew-7".

    Returns:
        The preset's validated set; an alias gives the aliased set under the alias's name.

    Raises:
        UnknownPresetError: No such preset; the message lists the available names.
    """
    key = name.strip().casefold() if isinstance(name, str) else ""
    target = _PRESET_ALIASES.get(key, key)
    if target not in _preset_files():
        raise UnknownPresetError(
            f"unknown preset {_quote(name)}; available: {', '.join(preset_names())}"
        )
    classes = _load_preset(target)
    return classes if target == key else replace(classes, name=key)


@lru_cache(maxsize=1)
def _preset_files() -> dict[str, str]:
    folder = resources.files(_PRESET_PACKAGE).joinpath(_PRESET_DIR)
    return {
        entry.name[: -len(".yaml")].casefold(): entry.name
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


@lru_cache(maxsize=None)
def _load_preset(key: str) -> ClassSet:
    entry = resources.files(_PRESET_PACKAGE).joinpath(_PRESET_DIR, _preset_files()[key])
    return ClassSet.from_yaml(entry.read_text(encoding="utf-8"))


# ---- building and editing helpers ------------------------------------------------------------


def _clean(text: Any) -> Any:
    """Strip surrounding whitespace and unify line ends; non-text is left for `_check`."""
    if isinstance(text, str):
        return text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text


def _as_tuple(items: Any) -> Any:
    if isinstance(items, str):
        return (items,)
    if isinstance(items, (list, tuple)):
        return tuple(items)
    return items


def _sequence(items: Any) -> Any:
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


def _key(name: str) -> str:
    """Comparison key for names: stripped, caseless, canonically composed."""
    folded = unicodedata.normalize("NFD", name.strip()).casefold()
    return unicodedata.normalize("NFC", folded)


def _find(items: Sequence[EmotionClass | Compound], name: Any) -> int | None:
    if not isinstance(name, str):
        return None
    key = _key(name)
    for index, item in enumerate(items):
        if isinstance(item.name, str) and _key(item.name) == key:
            return index
    return None


def _resolve_parts(parts: Any, classes: Sequence[EmotionClass]) -> Any:
    """Spell compound parts like the class names they match ignoring case."""
    if not isinstance(parts, tuple):
        return parts
    resolved = []
    for part in parts:
        index = _find(classes, part)
        resolved.append(part if index is None else classes[index].name)
    return tuple(resolved)


def _checked(classes: ClassSet, limits: Limits) -> ClassSet:
    _check(classes, limits)
    return classes


def _build(data: Any, *, name: str | None, default_name: str, limits: Limits) -> ClassSet:
    data_name, classes, compounds = _read(data, limits)
    set_name = name if name is not None else data_name if data_name is not None else default_name
    compounds = [replace(c, parts=_resolve_parts(c.parts, classes)) for c in compounds]
    return _checked(ClassSet(set_name, tuple(classes), tuple(compounds)), limits)


# ---- validation ------------------------------------------------------------------------------


def _check(classes: ClassSet, limits: Limits) -> None:
    """Raise ClassSetError listing every problem of `classes`."""
    problems = _problems(classes, limits)
    if not problems:
        return
    if len(problems) == 1:
        raise ClassSetError(problems[0], problems)
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    tail = f"; and {more} more" if more > 0 else ""
    raise ClassSetError(f"{len(problems)} problems: {shown}{tail}", problems)


def _problems(cs: ClassSet, limits: Limits) -> list[str]:
    problems = _name_problems("the class set", cs.name, limits)
    if not _all_of(cs.classes, EmotionClass):
        return [*problems, "classes must be a sequence of EmotionClass"]
    if not _all_of(cs.compounds, Compound):
        return [*problems, "compounds must be a sequence of Compound"]
    if not cs.classes:
        problems.append("the class set has no classes")
    total = len(cs.classes) + len(cs.compounds)
    if total > limits.max_classes:
        problems.append(
            f"too many classes: {total} (the limit is {limits.max_classes}, compounds included)"
        )
    for index, emotion in enumerate(cs.classes, 1):
        problems += _class_problems(index, emotion, limits)
    for index, compound in enumerate(cs.compounds, 1):
        problems += _compound_problems(index, compound, cs.classes, limits)
    return problems + _duplicate_problems(cs)


def _all_of(items: Any, kind: type) -> bool:
    return isinstance(items, tuple) and all(isinstance(item, kind) for item in items)


def _label(kind: str, index: int, name: Any) -> str:
    """How a message refers to a class or compound: by name if it has a usable one."""
    if isinstance(name, str) and name:
        return f"{kind} {_quote(name)}"
    return f"{kind} {index}"


def _name_problems(label: str, name: Any, limits: Limits) -> list[str]:
    if not isinstance(name, str):
        return [f"{label}: the name must be text, got {_describe(name)}"]
    if not name:
        return [f"{label} has an empty name"]
    problems = []
    if len(name) > limits.max_name_chars:
        problems.append(
            f"{label}: the name is {len(name)} characters long "
            f"(the limit is {limits.max_name_chars})"
        )
    bad = _bad_char(name)
    if bad:
        problems.append(f"{label}: the name contains {bad}; only newline and tab are allowed")
    return problems


def _class_problems(index: int, emotion: EmotionClass, limits: Limits) -> list[str]:
    label = _label("class", index, emotion.name)
    problems = _name_problems(label, emotion.name, limits)
    texts = emotion.descriptions
    if not isinstance(texts, tuple):
        got = _describe(texts)
        return [*problems, f"{label}: descriptions must be text or a list of text, got {got}"]
    if not texts:
        problems.append(f"{label} has no descriptions")
    if len(texts) > limits.max_descriptions:
        problems.append(
            f"{label} has {len(texts)} descriptions (the limit is {limits.max_descriptions})"
        )
    for number, text in enumerate(texts, 1):
        problems += _text_problems(f"{label}: description {number}", text, limits)
    return problems


def _text_problems(label: str, text: Any, limits: Limits) -> list[str]:
    if not isinstance(text, str):
        return [f"{label} must be text, got {_describe(text)}"]
    if not text:
        return [f"{label} is empty"]
    problems = []
    if len(text) > limits.max_text_chars:
        problems.append(
            f"{label} is {len(text)} characters long (the limit is {limits.max_text_chars})"
        )
    bad = _bad_char(text)
    if bad:
        problems.append(f"{label} contains {bad}; only newline and tab are allowed")
    return problems


def _compound_problems(
    index: int, compound: Compound, classes: Sequence[EmotionClass], limits: Limits
) -> list[str]:
    label = _label("compound", index, compound.name)
    problems = _name_problems(label, compound.name, limits)
    parts = compound.parts
    if not isinstance(parts, tuple):
        return [*problems, f"{label}: parts must be a list of class names, got {_describe(parts)}"]
    if len(parts) < 2:
        problems.append(f"{label} needs at least 2 parts, got {len(parts)}")
    if len(parts) > limits.max_compound_parts:
        problems.append(
            f"{label} has {len(parts)} parts (the limit is {limits.max_compound_parts})"
        )
    names = {c.name for c in classes}
    seen: set[str] = set()
    for number, part in enumerate(parts, 1):
        if not isinstance(part, str):
            problems.append(f"{label}: part {number} must be a class name, got {_describe(part)}")
        elif part not in names:
            hint = _hint(part, classes)
            problems.append(f"{label}: {_quote(part)} is not a class of this set{hint}")
        elif part in seen:
            problems.append(f"{label}: {_quote(part)} is listed twice")
        else:
            seen.add(part)
    return problems + _weight_problems(label, compound)


def _hint(part: str, classes: Sequence[EmotionClass]) -> str:
    index = _find(classes, part)
    if index is not None:
        return f" (did you mean {_quote(classes[index].name)}?)"
    return " (compounds combine classes, not other compounds)" if part else ""


def _weight_problems(label: str, compound: Compound) -> list[str]:
    weights = compound.weights
    if weights is None:
        return []
    if not isinstance(weights, tuple):
        return [f"{label}: weights must be a list of numbers, got {_describe(weights)}"]
    if len(weights) != len(compound.parts):
        return [f"{label} has {len(weights)} weights for {len(compound.parts)} parts"]
    problems = []
    for part, weight in zip(compound.parts, weights):
        if not _positive_number(weight):
            problems.append(
                f"{label}: the weight of {_quote(str(part))} must be a positive number, "
                f"got {_describe(weight)}"
            )
    return problems


def _positive_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an int too large for a float
        return False


def _duplicate_problems(cs: ClassSet) -> list[str]:
    entries = [("class", i, c.name) for i, c in enumerate(cs.classes, 1)]
    entries += [("compound", i, c.name) for i, c in enumerate(cs.compounds, 1)]
    first: dict[str, str] = {}
    problems = []
    for kind, index, name in entries:
        if not isinstance(name, str) or not name:
            continue
        label = _label(kind, index, name)
        key = _key(name)
        if key in first:
            problems.append(
                f"{label} has the same name as {first[key]} (names are compared ignoring case)"
            )
        else:
            first[key] = label
    return problems


def _warnings(cs: ClassSet) -> list[str]:
    warnings = []
    for emotion in cs.classes:
        label = f"class {_quote(emotion.name)}"
        for number, text in enumerate(emotion.descriptions, 1):
            tokens = _token_count(text)
            if tokens > CONTEXT_LENGTH:
                warnings.append(
                    f"{label}: description {number} is {tokens} tokens; the text encoder reads "
                    f"only the first {CONTEXT_LENGTH}"
                )
            if text in emotion.descriptions[: number - 1]:
                first = emotion.descriptions.index(text) + 1
                warnings.append(f"{label}: description {number} repeats description {first}")
    return warnings + _identical_class_warnings(cs)


def _identical_class_warnings(cs: ClassSet) -> list[str]:
    seen: dict[frozenset[str], str] = {}
    warnings = []
    for emotion in cs.classes:
        texts = frozenset(emotion.descriptions)
        if texts in seen:
            warnings.append(
                f"classes {_quote(seen[texts])} and {_quote(emotion.name)} have the same "
                "descriptions, so they always get the same score"
            )
        else:
            seen[texts] = emotion.name
    return warnings


@lru_cache(maxsize=4096)
def _token_count(text: str) -> int:
    return count_tokens(text)


def _bad_char(text: str) -> str | None:
    """Describe the first control character (other than newline and tab) or lone surrogate."""
    for char in text:
        if char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cs"):
            return f"the control character U+{ord(char):04X}"
    return None


# ---- reading parsed YAML/JSON ------------------------------------------------------------------


def _read(data: Any, limits: Limits) -> tuple[Any, list[EmotionClass], list[Compound]]:
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
            f"expected a mapping of class names to descriptions, got {_describe(data)}"
        )
    if "classes" not in data:  # the authors' flat format: every key is a class
        return None, _read_class_map(data, limits, flat=True), []
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise ClassSetError(
            f"unknown top-level key {_show_key(unknown[0])}; a class set file has "
            "'name', 'classes' and 'compounds'"
        )
    classes = data["classes"]
    if isinstance(classes, list):
        read = _read_class_list(classes, limits)
    elif isinstance(classes, Mapping):
        read = _read_class_map(classes, limits, flat=False)
    else:
        raise ClassSetError(
            f"'classes' must be a mapping of class names to descriptions, got {_describe(classes)}"
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
                f"got {_describe(item)}"
            )
        unknown = [key for key in item if key not in ("name", "descriptions", "description")]
        if unknown or "name" not in item:
            raise ClassSetError(
                f"class {number}: expected the keys 'name' and 'descriptions'"
                + (f", got {_show_key(unknown[0])}" if unknown else "")
            )
        name = item["name"]
        if not isinstance(name, str):
            raise ClassSetError(f"class {number}: the name must be text, got {_describe(name)}")
        value = item.get("descriptions", item.get("description"))
        classes.append(EmotionClass(name, _read_descriptions(name, value, limits, flat=False)))
    return classes


def _read_descriptions(name: str, value: Any, limits: Limits, *, flat: bool) -> tuple:
    label = f"class {_quote(name)}"
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        _check_count(f"descriptions for {label}", value, limits.max_descriptions)
        for number, text in enumerate(value, 1):
            if not isinstance(text, str):
                raise ClassSetError(
                    f"{label}: description {number} must be text, got {_describe(text)}"
                )
        return tuple(value)
    structured = flat and isinstance(value, Mapping)
    hint = " (a structured class set file needs a top-level 'classes' key)" if structured else ""
    raise ClassSetError(
        f"{label}: descriptions must be text or a list of text, got {_describe(value)}{hint}"
    )


def _read_compounds(data: Any, limits: Limits) -> list[Compound]:
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ClassSetError(
            f"'compounds' must be a mapping of compound names to their classes, "
            f"got {_describe(data)}"
        )
    _check_count("compounds", data, limits.max_classes)
    compounds = []
    for key, value in data.items():
        name = _key_text(key, "compound names")
        compounds.append(Compound(name, *_read_parts(name, value, limits)))
    return compounds


def _read_parts(name: str, value: Any, limits: Limits) -> tuple[tuple, tuple | None]:
    label = f"compound {_quote(name)}"
    if isinstance(value, list):
        _check_count(f"parts in {label}", value, limits.max_compound_parts)
        for number, part in enumerate(value, 1):
            if not isinstance(part, str):
                raise ClassSetError(
                    f"{label}: part {number} must be a class name, got {_describe(part)}"
                )
        return tuple(value), None
    if isinstance(value, Mapping):
        _check_count(f"parts in {label}", value, limits.max_compound_parts)
        for part, weight in value.items():
            _key_text(part, f"{label}: class names")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ClassSetError(
                    f"{label}: the weight of {_quote(part)} must be a number, "
                    f"got {_describe(weight)}"
                )
        return tuple(value), tuple(value.values())
    raise ClassSetError(
        f"{label}: expected a list of class names or a mapping of class names to weights, "
        f"got {_describe(value)}"
    )


def _key_text(key: Any, what: str) -> str:
    if isinstance(key, str):
        return key
    raise ClassSetError(f"{what} must be text, got {_describe(key)}; put it in quotes")


# ---- text and files --------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ClassSetError(
            f"unsupported file type {_quote(path.suffix or path.name)}: use .yaml, .yml or .json"
        )
    return fmt


def _read_file(path: Path, limits: Limits) -> str:
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise ClassSetError(
                f"{_quote(path.name)} is {_kb(size)}; the limit is {_kb(limits.max_file_bytes)}"
            )
        with path.open("rb") as file:
            raw = file.read(limits.max_file_bytes + 1)  # the file may grow after stat()
    except OSError as error:
        raise ClassSetError(
            f"cannot read {_quote(path.name)}: {error.strerror or error}"
        ) from error
    if len(raw) > limits.max_file_bytes:
        raise ClassSetError(f"{_quote(path.name)} is over {_kb(limits.max_file_bytes)}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ClassSetError(
            f"{_quote(path.name)} is not UTF-8 text (bad byte at offset {error.start})"
        ) from None


def _load_text(text: str, fmt: str, limits: Limits) -> Any:
    """YAML/JSON text -> plain data. `fmt` is "yaml", "json" or "auto"."""
    if not isinstance(text, str):
        raise TypeError(f"expected the text of a class set (str), got {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_file_bytes:
        raise ClassSetError(
            f"the class set text is {_kb(size)}; the limit is {_kb(limits.max_file_bytes)}"
        )
    text = text.removeprefix("\ufeff")
    if fmt == "json":
        return _load_json(text)
    if fmt == "auto" and text.lstrip().startswith(("{", "[")):
        try:
            return _load_json(text)
        except ClassSetError as json_error:
            try:  # a YAML flow collection such as {anger: ...} is not JSON
                return _load_yaml(text, limits)
            except ClassSetError:
                raise json_error from None
    return _load_yaml(text, limits)


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except ClassSetError:
        raise
    except json.JSONDecodeError as error:
        raise ClassSetError(
            f"JSON syntax error at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except ValueError:  # e.g. an integer with thousands of digits
        raise ClassSetError("the JSON contains a number too large to read") from None
    except RecursionError:
        raise ClassSetError("the JSON is nested too deeply") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ClassSetError(f"duplicate key {_quote(key)} in the JSON")
        data[key] = value
    return data


def _load_yaml(text: str, limits: Limits) -> Any:
    try:
        loader = _YamlLoader(text)
        loader.node_budget = _node_budget(limits)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ClassSetError:
        raise
    except yaml.MarkedYAMLError as error:
        raise ClassSetError(_yaml_message(error)) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        code = ord(error.character) if isinstance(error.character, str) else error.character
        raise ClassSetError(
            f"YAML error at line {line}: the character U+{code:04X} is not allowed in YAML"
        ) from None
    except yaml.YAMLError as error:
        raise ClassSetError(f"YAML error: {error}") from None
    except RecursionError:
        raise ClassSetError("the YAML is nested too deeply") from None
    except (ValueError, OverflowError, TypeError) as error:  # e.g. 2024-02-31 read as a date
        reason = "a number is too long" if "digits" in str(error) else str(error)
        raise ClassSetError(
            f"the YAML contains a value that cannot be read ({reason}); put text in quotes"
        ) from None


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"YAML error{where}: {error.problem or error.context or 'invalid YAML'}"


def _node_budget(limits: Limits) -> int:
    """Most YAML nodes a valid class set can need, with room for the entry-list format."""
    per_class = limits.max_descriptions + limits.max_compound_parts + 8
    return 64 + 2 * limits.max_classes * per_class


class _YamlLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects merge keys, duplicate keys and oversized documents.

    The pure-Python loader is used on purpose: it fails cleanly (RecursionError) on deeply
    nested input, where libyaml's composer can overflow the C stack. Counting composed nodes
    (each alias use counts once) bounds the work; construction then shares aliased objects,
    and `_read` never walks more than the limits allow, so alias bombs stay cheap.
    """

    node_budget = 10_000
    _nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._nodes += 1
        if self._nodes > self.node_budget:
            mark = self.peek_event().start_mark
            raise ClassSetError(
                f"YAML error at line {mark.line + 1}: the document has more than "
                f"{self.node_budget} values (aliases included), too many for a class set"
            )
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not supported in class sets",
                    key_node.start_mark,
                )
        super().flatten_mapping(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: PyYAML reports it below
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_show_key(key)}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


class _FlowList(list):
    """A list written in YAML flow style: [a, b]."""


class _FlowDict(dict):
    """A mapping written in YAML flow style: {a: 1, b: 2}."""


class _YamlDumper(yaml.SafeDumper):
    """SafeDumper that writes compound parts on one line."""


_YamlDumper.add_representer(
    _FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, True)
)
_YamlDumper.add_representer(
    _FlowDict, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, True)
)


def _yaml_ready(data: dict[str, Any]) -> dict[str, Any]:
    compounds = data.get("compounds")
    if compounds:
        data["compounds"] = {
            name: _FlowList(parts) if isinstance(parts, list) else _FlowDict(parts)
            for name, parts in compounds.items()
        }
    return data


# ---- messages --------------------------------------------------------------------------------


def _quote(name: Any) -> str:
    """A name as a message shows it: quoted, shortened, control characters escaped."""
    text = str(name)
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + "…"
    text = "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cs") else char
        for char in text
    )
    return f"'{text}'"


def _show_key(key: Any) -> str:
    return _quote(key) if isinstance(key, str) else _describe(key)


def _describe(value: Any) -> str:
    """What a value is, in words, for an error message (never a full repr)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the true/false value {str(value).lower()}"
    if isinstance(value, (int, float)):
        shown = repr(value) if isinstance(value, float) or abs(value) < 10**20 else "a huge number"
        return f"the number {shown}"
    if isinstance(value, str):
        return f"the text {_quote(value)}"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a date (put it in quotes to keep it as text)"
    kinds = {bytes: "binary data", list: "a list", tuple: "a list", set: "a set", dict: "a mapping"}
    for kind, words in kinds.items():
        if isinstance(value, kind):
            return words
    return f"a value of type {type(value).__name__}"


def _kb(size: int) -> str:
    return f"{size / 1000:.0f} kB" if size >= 1000 else f"{size} bytes"
