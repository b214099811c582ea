"""The bundled class-set presets: YAML files in ``emoclip/presets``, read on first use."""

from __future__ import annotations

from dataclasses import replace
from functools import cache, lru_cache
from importlib import resources

from emoclip.classes.base import UnknownPresetError
from emoclip.classes.classset import ClassSet
from emoclip.classes.messages import quote

_PRESET_PACKAGE = "emoclip"
_PRESET_DIR = "presets"
_PRESET_ALIASES = {"ferv39k-7": "dfew-7", "afew-7": "dfew-7"}  # same classes and order as DFEW


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
            f"unknown preset {quote(name)}; available: {', '.join(preset_names())}"
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


@cache
def _load_preset(key: str) -> ClassSet:
    entry = resources.files(_PRESET_PACKAGE).joinpath(_PRESET_DIR).joinpath(_preset_files()[key])
    return ClassSet.from_yaml(entry.read_text(encoding="utf-8"))
