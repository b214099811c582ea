"""Text that is safe to print on a terminal: used by the CLI and by batch error messages."""

from __future__ import annotations

import unicodedata

# Bidirectional embeddings, overrides and isolates: they can reorder what a terminal shows.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def safe_text(value: object, keep: str = "") -> str:
    """Text safe to print on a terminal: control characters (but those in `keep`), lone
    surrogates (file names that are not UTF-8) and bidi controls are escaped, so a file or class
    name cannot move the cursor, recolour the terminal or make ``print`` fail."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if char not in keep and _unsafe_char(char)
        else char
        for char in text
    )


def _unsafe_char(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS


def terminal_message(exc: BaseException) -> str:
    """An error message for the terminal (see `safe_text`), its line breaks kept."""
    return safe_text(exc, keep="\n")
