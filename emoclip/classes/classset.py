"""The `ClassSet` class and the helpers that build and edit it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from emoclip.classes.base import (
    ClassSetError,
    Compound,
    EmotionClass,
    Limits,
    as_sequence,
    as_tuple,
    clean_text,
    find_index,
)
from emoclip.classes.checks import bad_char, check_class_set, class_set_warnings
from emoclip.classes.files import YamlDumper, format_of, load_text, read_file, yaml_ready
from emoclip.classes.messages import kb, quote
from emoclip.classes.reading import read_data

_DEFAULT_NAME = "custom"


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
        object.__setattr__(self, "name", clean_text(self.name))
        object.__setattr__(self, "classes", as_tuple(self.classes))
        object.__setattr__(self, "compounds", as_tuple(self.compounds))

    @property
    def names(self) -> list[str]:
        """Class names, then compound names: the order of the score vector."""
        return [c.name for c in self.classes] + [c.name for c in self.compounds]

    @property
    def texts(self) -> list[str]:
        """Every distinct description, in first-seen order: what the text encoder embeds."""
        return list(dict.fromkeys(text for c in self.classes for text in c.descriptions))

    def validate(self, limits: Limits = Limits(), context_length: int = 77) -> list[str]:
        """Check the set and report what may not work as the user expects.

        Args:
            limits: Size limits to enforce.
            context_length: Token positions of the text encoder that will read the set (77 for
                CLIP text towers; a model's `EmoCLIP.context_length`).

        Returns:
            Human-readable warnings (for example a description longer than the text encoder's
            77 token positions, which it truncates); empty if there is nothing to say.

        Raises:
            ClassSetError: The set is invalid; the message lists the problems.
        """
        check_class_set(self, limits)
        return class_set_warnings(self, context_length)

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
        new = EmotionClass(name, as_sequence(descriptions))
        index = find_index(self.classes, new.name)
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
        compound = find_index(self.compounds, name)
        if compound is not None:
            compounds = self.compounds[:compound] + self.compounds[compound + 1 :]
            return _checked(replace(self, compounds=compounds), limits)
        index = self._class_index(name)
        removed = self.classes[index].name
        users = [c for c in self.compounds if removed in c.parts]
        if users and not cascade:
            raise ClassSetError(
                f"class {quote(removed)} is used by compound(s) "
                f"{', '.join(quote(c.name) for c in users)}; remove them first"
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
        compound = find_index(self.compounds, old)
        if compound is not None:
            compounds = list(self.compounds)
            compounds[compound] = replace(compounds[compound], name=new)
            return _checked(replace(self, compounds=tuple(compounds)), limits)
        index = self._class_index(old)
        current = self.classes[index].name
        classes = list(self.classes)
        classes[index] = replace(classes[index], name=new)
        new_name = classes[index].name
        renamed = tuple(
            replace(c, parts=tuple(new_name if p == current else p for p in c.parts))
            for c in self.compounds
        )
        return _checked(ClassSet(self.name, tuple(classes), renamed), limits)

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
        new = Compound(name, as_sequence(parts), None if weights is None else as_sequence(weights))
        new = replace(new, parts=_resolve_parts(new.parts, self.classes))
        index = find_index(self.compounds, new.name)
        compounds = list(self.compounds)
        if index is None:
            compounds.append(new)
        else:
            compounds[index] = new
        return _checked(replace(self, compounds=tuple(compounds)), limits)

    def _class_index(self, name: str) -> int:
        index = find_index(self.classes, name)
        if index is None:
            raise ClassSetError(f"there is no class or compound named {quote(name)}")
        return index

    # ---- dict, YAML, JSON, files ---------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Any, *, name: str | None = None, limits: Limits = Limits()
    ) -> ClassSet:
        """Build a set from parsed YAML/JSON data (see the `emoclip.classes` docstring for formats).

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
        return cls.from_dict(load_text(text, "auto", limits), name=name, limits=limits)

    @classmethod
    def from_yaml(
        cls, text: str, *, name: str | None = None, limits: Limits = Limits()
    ) -> ClassSet:
        """Read a set from YAML text. See `parse`."""
        return cls.from_dict(load_text(text, "yaml", limits), name=name, limits=limits)

    @classmethod
    def from_json(
        cls, text: str, *, name: str | None = None, limits: Limits = Limits()
    ) -> ClassSet:
        """Read a set from JSON text. See `parse`."""
        return cls.from_dict(load_text(text, "json", limits), name=name, limits=limits)

    def to_yaml(self) -> str:
        """The set as YAML (UTF-8 text kept as is, one line per description)."""
        return yaml.dump(
            yaml_ready(self.to_dict()),
            Dumper=YamlDumper,
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
        fmt = format_of(path)
        text = read_file(path, limits)
        stem = path.stem.strip()[: limits.max_name_chars] or _DEFAULT_NAME
        default = _DEFAULT_NAME if bad_char(stem) else stem
        return _build(load_text(text, fmt, limits), name=None, default_name=default, limits=limits)

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
        text = self.to_yaml() if format_of(path) == "yaml" else self.to_json()
        size = len(text.encode("utf-8"))
        if size > limits.max_file_bytes:
            raise ClassSetError(
                f"the class set would be a {kb(size)} file; the limit is "
                f"{kb(limits.max_file_bytes)}"
            )
        path.write_text(text, encoding="utf-8")


def _resolve_parts(parts: Any, classes: Sequence[EmotionClass]) -> Any:
    """Spell compound parts like the class names they match ignoring case."""
    if not isinstance(parts, tuple):
        return parts
    resolved = []
    for part in parts:
        index = find_index(classes, part)
        resolved.append(part if index is None else classes[index].name)
    return tuple(resolved)


def _checked(classes: ClassSet, limits: Limits) -> ClassSet:
    check_class_set(classes, limits)
    return classes


def _build(data: Any, *, name: str | None, default_name: str, limits: Limits) -> ClassSet:
    data_name, classes, compounds = read_data(data, limits)
    set_name = name if name is not None else data_name if data_name is not None else default_name
    compounds = [replace(c, parts=_resolve_parts(c.parts, classes)) for c in compounds]
    return _checked(ClassSet(set_name, tuple(classes), tuple(compounds)), limits)
