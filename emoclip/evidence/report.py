"""What the evidence for one answer is, as plain data (no torch): key moments, matched words, the
margin, and the plain-words text of ``emoclip predict --explain``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClassWords", "Evidence", "Moment", "explain_lines"]

NO_MOMENTS_PHOTO = "a photo has no moments: its answer has no time axis"
NO_MOMENTS_ONE_FRAME = "a clip of one frame has no moments: nothing is left when it is removed"


@dataclass(frozen=True)
class Moment:
    """One frame of the sequence the clip's answer pools, and what removing it changes.

    Attributes:
        index: The frame's row in the encoding's frame embeddings (``VideoEncoding.frame_times``).
        time: The frame's time in seconds.
        start, end: The stretch of the clip it stands for (halfway to its neighbours in the
            pooled sequence), seconds.
        drop: The top class's probability minus its probability with this frame removed (> 0:
            the frame supports the answer).
        runner_up_drop: The same for the runner-up class.
        thumbnail: Index of the nearest thumbnail crop (``VideoEncoding.thumbnails``), -1 if none.
    """

    index: int
    time: float
    start: float
    end: float
    drop: float
    runner_up_drop: float
    thumbnail: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": _f(self.time),
            "start": _f(self.start),
            "end": _f(self.end),
            "drop": _f(self.drop),
            "runner_up_drop": _f(self.runner_up_drop),
            "thumbnail": self.thumbnail,
        }


@dataclass(frozen=True)
class ClassWords:
    """Which of a class's words matched the clip.

    Attributes:
        name: The class (or compound) name.
        kind: ``"class"`` (its items are descriptions) or ``"compound"`` (its items are parts).
        items: (description or part name, cosine similarity with the clip embedding), in the
            class set's order.
        best: The item most similar to the clip.
    """

    name: str
    kind: str
    items: list[tuple[str, float]]
    best: str

    def to_dict(self) -> dict[str, Any]:
        key = "descriptions" if self.kind == "class" else "parts"
        return {
            "name": self.name,
            "kind": self.kind,
            "best": self.best,
            key: [{"text": t, "similarity": _f(s)} for t, s in self.items],
        }


@dataclass
class Evidence:
    """Why one answer: key moments, the words that matched, how far ahead the top class is.

    Attributes:
        top, runner_up: The most and second most probable classes (runner-up None for one class).
        margin: Top probability minus runner-up probability (1.0 with a single class).
        uncertain: ``margin < uncertain_below``.
        uncertain_below: The margin under which an answer is called uncertain
            (`words.UNCERTAIN_MARGIN`).
        moments: Every pooled frame, in time order (empty for a photo or a one-frame clip).
        key_moments: Indices into `moments` of up to three frames supporting the answer most
            (largest positive `Moment.drop` first).
        against: Index into `moments` of the frame supporting the runner-up most (largest
            positive `Moment.runner_up_drop`), or None.
        no_moments: Why there are no moments ("" when there are).
        words: The top class's and runner-up's `ClassWords` first, then every other class's.
        faces: For a photo, each face's own evidence (largest face first; no moments), empty
            for a video.
    """

    top: str
    runner_up: str | None
    margin: float
    uncertain: bool
    uncertain_below: float
    moments: list[Moment] = field(default_factory=list)
    key_moments: list[int] = field(default_factory=list)
    against: int | None = None
    no_moments: str = ""
    words: list[ClassWords] = field(default_factory=list)
    faces: list[Evidence] = field(default_factory=list)

    def best_description(self, name: str) -> str | None:
        """The best-matching description (or part) of class `name`, None if unknown."""
        return next((w.best for w in self.words if w.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``key_moments`` and ``against`` as moments, not indices."""
        return {
            "top": self.top,
            "runner_up": self.runner_up,
            "margin": _f(self.margin),
            "uncertain": self.uncertain,
            "uncertain_below": _f(self.uncertain_below),
            "best_description": self.best_description(self.top),
            "key_moments": [self.moments[i].to_dict() for i in self.key_moments],
            "against": None if self.against is None else self.moments[self.against].to_dict(),
            "no_moments": self.no_moments or None,
            "moments": [m.to_dict() for m in self.moments],
            "words": [w.to_dict() for w in self.words],
        } | ({"faces": [f.to_dict() for f in self.faces]} if self.faces else {})


def explain_lines(evidence: Evidence) -> list[str]:
    """The evidence in plain words, one sentence a line (``emoclip predict --explain``)."""
    e = evidence
    lines = []
    if e.runner_up is None:
        lines.append(f"'{e.top}' is the only class.")
    else:
        sure = "uncertain" if e.uncertain else "clear"
        lines.append(
            f"'{e.top}' is ahead of '{e.runner_up}' by {100 * e.margin:.1f} points: {sure} "
            f"(answers less than {100 * e.uncertain_below:.1f} points ahead are called uncertain)."
        )
    best = e.best_description(e.top)
    if best is not None:
        lines.append(f"Best-matching words for '{e.top}': \"{best}\".")
    if e.no_moments:
        lines.append(e.no_moments[0].upper() + e.no_moments[1:] + ".")
    elif not e.key_moments:
        lines.append(
            "No single moment supports the answer: removing any one frame does not lower it."
        )
    for i in e.key_moments:
        m = e.moments[i]
        lines.append(
            f"Key moment at {m.time:.2f} s ({m.start:.2f}-{m.end:.2f} s): without it "
            f"'{e.top}' drops by {100 * m.drop:.1f} points."
        )
    if e.against is not None and e.runner_up is not None:
        m = e.moments[e.against]
        lines.append(
            f"The moment at {m.time:.2f} s argues most for '{e.runner_up}': without it "
            f"'{e.runner_up}' drops by {100 * m.runner_up_drop:.1f} points."
        )
    if len(e.faces) > 1:
        for n, face in enumerate(e.faces, 1):
            ahead = "" if face.runner_up is None else f", {100 * face.margin:.1f} points ahead"
            flag = " (uncertain)" if face.uncertain else ""
            best = face.best_description(face.top)
            lines.append(f"Face {n}: '{face.top}'{ahead}{flag}; best-matching words \"{best}\".")
    return lines


def _f(x: Any) -> float:
    value = float(x)
    return round(value, 6) if math.isfinite(value) else 0.0
