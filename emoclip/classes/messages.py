"""How error messages and warnings show names, values and sizes."""

from __future__ import annotations

import datetime
import unicodedata
from typing import Any

_SHOWN_CHARS = 40  # longest name quoted in full in a message


def quote(name: Any) -> str:
    """A name as a message shows it: quoted, shortened, control characters escaped."""
    text = str(name)
    if len(text) > _SHOWN_CHARS:  # cut at a word boundary when one keeps 2/3 of the text
        head = text[: _SHOWN_CHARS + 1]
        cut = head.rsplit(None, 1)[0] if any(c.isspace() for c in head) else ""
        text = (cut if len(cut) >= _SHOWN_CHARS * 2 // 3 else text[:_SHOWN_CHARS]).rstrip() + "…"
    text = "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in ("Cc", "Cs") else char
        for char in text
    )
    return f"'{text}'"


def show_key(key: Any) -> str:
    return quote(key) if isinstance(key, str) else describe(key)


def describe(value: Any) -> str:
    """What a value is, in words, for an error message (never a full repr)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the true/false value {str(value).lower()}"
    if isinstance(value, (int, float)):
        shown = repr(value) if isinstance(value, float) or abs(value) < 10**20 else "a huge number"
        return f"the number {shown}"
    if isinstance(value, str):
        return f"the text {quote(value)}"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a date (put it in quotes to keep it as text)"
    kinds = {bytes: "binary data", list: "a list", tuple: "a list", set: "a set", dict: "a mapping"}
    for kind, words in kinds.items():
        if isinstance(value, kind):
            return words
    return f"a value of type {type(value).__name__}"


def kb(size: int) -> str:
    return f"{size / 1000:.0f} kB" if size >= 1000 else f"{size} bytes"
