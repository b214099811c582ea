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

from emoclip.classes.base import ClassSetError, Compound, EmotionClass, Limits, UnknownPresetError
from emoclip.classes.classset import ClassSet
from emoclip.classes.presets import preset, preset_names
from emoclip.classes.rows import class_rows, classes_from_rows, parse_weights

__all__ = [
    "ClassSet",
    "ClassSetError",
    "Compound",
    "EmotionClass",
    "Limits",
    "UnknownPresetError",
    "class_rows",
    "classes_from_rows",
    "parse_weights",
    "preset",
    "preset_names",
]
