"""Prediction results and their JSON/CSV export (plain data, no torch)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# "box": a still image's face box as "x y w h" pixels on its track rows, empty elsewhere
CSV_COLUMNS = ("video", "scope", "track", "start", "end", "class", "probability", "box")


@dataclass
class Timeline:
    """Per-window probabilities.

    Attributes:
        starts: (W,) window start times in seconds.
        ends: (W,) window end times in seconds.
        probabilities: (W, C) float32, rows sum to 1.
    """

    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        """(W,) window centre times in seconds."""
        return (self.starts + self.ends) / 2

    def __len__(self) -> int:
        return len(self.starts)


@dataclass
class TrackPrediction:
    """Clip-level result for one tracked face (for a still image: one face of the photo).

    Attributes:
        box: ``(x, y, w, h)`` face box in pixels of the upright image, for still images; None for
            video tracks.
    """

    track_id: int
    num_frames: int
    start: float
    end: float
    probabilities: dict[str, float]
    primary: bool = False
    box: tuple[float, float, float, float] | None = None

    @property
    def top(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)


@dataclass
class FaceSummary:
    """How many sampled frames had a face, and which did not."""

    sampled_frames: int
    frames_with_face: int
    frames_without_face: int
    no_face_times: list[float]
    tracks: int
    fallback: str
    detection: bool = True


@dataclass
class Prediction:
    """Result of `EmotionPredictor.predict`.

    Attributes:
        model: Name of the model that produced it.
        classes: Class then compound names: the column order of every probability array.
        probabilities: Clip-level probability per class (sums to 1).
        timeline: Overlapping windows over time.
        tracks: One result per tracked face (the primary subject marked).
        embedding: (D,) L2-normalised clip embedding (float32).
        faces: Face-detection summary.
        timings: Seconds per stage (decode, detect, encode, temporal, text, score, total).
        video: Source metadata (name, duration, fps, width, height).
        warnings: Things the user should know (no face found, truncated descriptions, ...).
    """

    model: str
    classes: list[str]
    probabilities: dict[str, float]
    timeline: Timeline
    tracks: list[TrackPrediction]
    embedding: np.ndarray
    faces: FaceSummary
    timings: dict[str, float]
    video: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def top(self) -> str:
        """The most probable class."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def scope(self) -> str:
        """What the answer describes: ``"face"`` (a photo's first face), ``"faces"`` (a video's
        people), or ``"whole image"`` / ``"whole frames"`` when no face was found or the model
        takes whole frames (no face search ran: see `warnings`)."""
        image = self.video.get("kind") == "image"
        if self.faces.detection and self.tracks:
            return "face" if image else "faces"
        return "whole image" if image else "whole frames"

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable classes with their probabilities, best first."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (scope, probabilities, top, timeline, tracks, faces, embedding,
        timings); a photo's has no timeline."""
        out = {
            "model": self.model,
            "video": self.video,
            "scope": self.scope,
            "classes": self.classes,
            "top": self.top,
            "probabilities": _floats(self.probabilities),
            "timeline": [
                {
                    "start": _f(s),
                    "end": _f(e),
                    "probabilities": dict(zip(self.classes, map(_f, row))),
                }
                for s, e, row in zip(
                    self.timeline.starts, self.timeline.ends, self.timeline.probabilities
                )
            ],
            "tracks": [
                {
                    "track_id": t.track_id,
                    "primary": t.primary,
                    "num_frames": t.num_frames,
                    "start": _f(t.start),
                    "end": _f(t.end),
                    "top": t.top,
                    "probabilities": _floats(t.probabilities),
                }
                | ({"box": [_f(v) for v in t.box]} if t.box is not None else {})
                for t in self.tracks
            ],
            "faces": self.faces.__dict__
            | {"no_face_times": [_f(x) for x in self.faces.no_face_times]},
            "embedding": [_f(x) for x in self.embedding],
            "timings": _floats(self.timings),
            "warnings": list(self.warnings),
        }
        if self.video.get("kind") == "image":
            del out["timeline"]
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        if path is not None:
            write_text(path, text + "\n")
        return text

    def csv_rows(self) -> list[dict[str, Any]]:
        """Rows of `CSV_COLUMNS`: clip, each window and each track, one row per class."""
        name = self.video.get("name", "")
        duration = self.video.get("duration", 0.0)
        rows = [_row(name, "clip", "", 0.0, duration, c, p) for c, p in self.probabilities.items()]
        for s, e, probs in zip(
            self.timeline.starts, self.timeline.ends, self.timeline.probabilities
        ):
            rows += [_row(name, "window", "", s, e, c, p) for c, p in zip(self.classes, probs)]
        for t in self.tracks:
            box = "" if t.box is None else " ".join(f"{v:.1f}" for v in t.box)
            rows += [
                _row(name, "track", t.track_id, t.start, t.end, c, p, box)
                for c, p in t.probabilities.items()
            ]
        return rows

    def to_csv(self, path: str | Path | None = None) -> str:
        """CSV text with `CSV_COLUMNS`; also written to `path` when given."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        # The writer quotes fields holding its line terminator "\n" but not a lone "\r", which
        # readers take as a line break; rows with one are written with every field quoted.
        quoted = csv.DictWriter(
            buf, fieldnames=CSV_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL
        )
        writer.writeheader()
        for row in self.csv_rows():
            has_cr = any(isinstance(v, str) and "\r" in v for v in row.values())
            (quoted if has_cr else writer).writerow(row)
        if path is not None:
            write_text(path, buf.getvalue())
        return buf.getvalue()


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text; lone surrogates (a file name that is not UTF-8) become ``\\udcff``."""
    Path(path).write_text(text, encoding="utf-8", errors="backslashreplace")


def _f(x: Any) -> float:
    value = float(x)
    return round(value, 6) if math.isfinite(value) else 0.0


def _floats(d: dict[str, Any]) -> dict[str, float]:
    return {k: _f(v) for k, v in d.items()}


def _row(
    video: str, scope: str, track: Any, start: float, end: float, cls: str, p: float, box: str = ""
) -> dict[str, Any]:
    return {
        "video": video,
        "scope": scope,
        "track": track,
        "start": round(float(start), 3),
        "end": round(float(end), 3),
        "class": cls,
        "probability": _f(p),
        "box": box,
    }
