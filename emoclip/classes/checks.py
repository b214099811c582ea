"""Validation of a class set: the problems that make it invalid and the warnings about it."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from emoclip.classes.base import (
    ClassSetError,
    ClassSetParts,
    Compound,
    EmotionClass,
    Limits,
    find_index,
    name_key,
)
from emoclip.classes.messages import describe, quote
from emoclip.model.tokenizer import CONTEXT_LENGTH, count_tokens

_SHOWN_PROBLEMS = 10  # problems listed in one ClassSetError message


def check_class_set(classes: ClassSetParts, limits: Limits) -> None:
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


def _problems(cs: ClassSetParts, limits: Limits) -> list[str]:
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
        return f"{kind} {quote(name)}"
    return f"{kind} {index}"


def _name_problems(label: str, name: Any, limits: Limits) -> list[str]:
    if not isinstance(name, str):
        return [f"{label}: the name must be text, got {describe(name)}"]
    if not name:
        return [f"{label} has an empty name"]
    problems = []
    if len(name) > limits.max_name_chars:
        problems.append(
            f"{label}: the name is {len(name)} characters long "
            f"(the limit is {limits.max_name_chars})"
        )
    bad = bad_char(name)
    if bad:
        problems.append(f"{label}: the name contains {bad}; only newline and tab are allowed")
    return problems


def _class_problems(index: int, emotion: EmotionClass, limits: Limits) -> list[str]:
    label = _label("class", index, emotion.name)
    problems = _name_problems(label, emotion.name, limits)
    texts = emotion.descriptions
    if not isinstance(texts, tuple):
        got = describe(texts)
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
        return [f"{label} must be text, got {describe(text)}"]
    if not text:
        return [f"{label} is empty"]
    problems = []
    if len(text) > limits.max_text_chars:
        problems.append(
            f"{label} is {len(text)} characters long (the limit is {limits.max_text_chars})"
        )
    bad = bad_char(text)
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
        return [*problems, f"{label}: parts must be a list of class names, got {describe(parts)}"]
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
            problems.append(f"{label}: part {number} must be a class name, got {describe(part)}")
        elif part not in names:
            hint = _hint(part, classes)
            problems.append(f"{label}: {quote(part)} is not a class of this set{hint}")
        elif part in seen:
            problems.append(f"{label}: {quote(part)} is listed twice")
        else:
            seen.add(part)
    return problems + _weight_problems(label, compound)


def _hint(part: str, classes: Sequence[EmotionClass]) -> str:
    index = find_index(classes, part)
    if index is not None:
        return f" (did you mean {quote(classes[index].name)}?)"
    return " (compounds combine classes, not other compounds)" if part else ""


def _weight_problems(label: str, compound: Compound) -> list[str]:
    weights = compound.weights
    if weights is None:
        return []
    if not isinstance(weights, tuple):
        return [f"{label}: weights must be a list of numbers, got {describe(weights)}"]
    if len(weights) != len(compound.parts):
        return [f"{label} has {len(weights)} weights for {len(compound.parts)} parts"]
    problems = []
    for part, weight in zip(compound.parts, weights):
        if not _positive_number(weight):
            problems.append(
                f"{label}: the weight of {quote(str(part))} must be a positive number, "
                f"got {describe(weight)}"
            )
    return problems


def _positive_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an int too large for a float
        return False


def _duplicate_problems(cs: ClassSetParts) -> list[str]:
    entries = [("class", i, c.name) for i, c in enumerate(cs.classes, 1)]
    entries += [("compound", i, c.name) for i, c in enumerate(cs.compounds, 1)]
    first: dict[str, str] = {}
    problems = []
    for kind, index, name in entries:
        if not isinstance(name, str) or not name:
            continue
        label = _label(kind, index, name)
        key = name_key(name)
        if key in first:
            problems.append(
                f"{label} has the same name as {first[key]} (names are compared ignoring case)"
            )
        else:
            first[key] = label
    return problems


def class_set_warnings(cs: ClassSetParts, context_length: int = CONTEXT_LENGTH) -> list[str]:
    """What may not work as the user expects; `context_length`: the text tower's token positions."""
    warnings = []
    for emotion in cs.classes:
        label = f"class {quote(emotion.name)}"
        for number, text in enumerate(emotion.descriptions, 1):
            tokens = _token_count(text)
            if tokens > context_length:
                warnings.append(
                    f"{label}: description {number} is {tokens} tokens; the text encoder reads "
                    f"only the first {context_length}"
                )
            if text in emotion.descriptions[: number - 1]:
                first = emotion.descriptions.index(text) + 1
                warnings.append(f"{label}: description {number} repeats description {first}")
    return warnings + _identical_class_warnings(cs)


def _identical_class_warnings(cs: ClassSetParts) -> list[str]:
    seen: dict[frozenset[str], str] = {}
    warnings = []
    for emotion in cs.classes:
        texts = frozenset(emotion.descriptions)
        if texts in seen:
            warnings.append(
                f"classes {quote(seen[texts])} and {quote(emotion.name)} have the same "
                "descriptions, so they always get the same score"
            )
        else:
            seen[texts] = emotion.name
    return warnings


@lru_cache(maxsize=4096)
def _token_count(text: str) -> int:
    return count_tokens(text)


def bad_char(text: str) -> str | None:
    """Describe the first control character (other than newline and tab) or lone surrogate."""
    for char in text:
        if char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cs"):
            return f"the control character U+{ord(char):04X}"
    return None
