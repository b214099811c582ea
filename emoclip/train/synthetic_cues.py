"""Cues of the synthetic expressions: the three face parts and their values, and `Expression`,
one combination of cue values. Shared by the captions (`synthetic_captions`), the renderer
(`synthetic_drawing`) and the dataset (`synthetic`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CUES", "Expression"]

CUES: dict[str, tuple[str, ...]] = {
    "mouth": ("smile", "frown", "open", "flat"),
    "brows": ("raised", "furrowed", "neutral"),
    "eyes": ("wide", "narrowed", "normal"),
}


@dataclass(frozen=True)
class Expression:
    """One combination of cue values, e.g. ``Expression("smile", "raised", "wide")``."""

    mouth: str
    brows: str
    eyes: str

    def __post_init__(self) -> None:
        for cue, values in CUES.items():
            if getattr(self, cue) not in values:
                raise ValueError(f"{cue}={getattr(self, cue)!r} is not one of {values}")
