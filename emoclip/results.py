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

from emoclip.evidence.report import Evidence
from emoclip.provenance import Provenance, write_sidecar

# "box": a still image's face box as "x y w h" pixels on its track rows, empty elsewhere.
# "evidence": words on the evidence rows (`evidence_rows`), empty elsewhere.
CSV_COLUMNS = (
    "video",
    "scope",
    "track",
    "start",
    "end",
    "class",
    "probability",
    "box",
    "evidence",
)


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
        evidence: Why this answer (key moments, matched words, margin); None when not computed.
        provenance: What produced it (`emoclip.provenance.Provenance`: model and weights,
            class set, package version, settings); None when not recorded.
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
    evidence: Evidence | None = None
    provenance: Provenance | None = None

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
        timings, warnings, evidence); a photo's has no timeline."""
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
        if self.evidence is not None:
            out["evidence"] = self.evidence.to_dict()
        if self.provenance is not None:
            out["provenance"] = self.provenance.as_dict() | {"digest": self.provenance.digest()}
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
        if self.evidence is not None:
            rows += evidence_rows(name, self.evidence, duration)
        return rows

    def to_csv(self, path: str | Path | None = None) -> str:
        """CSV text with `CSV_COLUMNS`; also written to `path` when given, with the provenance in
        ``NAME.provenance.json`` beside it (`emoclip.provenance.write_sidecar`)."""
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
            if self.provenance is not None:
                write_sidecar(path, self.provenance)
        return buf.getvalue()


def evidence_rows(video: str, evidence: Evidence, duration: float) -> list[dict[str, Any]]:
    """The evidence as CSV rows: scope ``margin`` (class: the top one, probability: its margin,
    evidence: "uncertain" or "clear"), ``key_moment`` (start/end: the stretch it stands for,
    probability: the top class's drop without it), ``against`` (the same for the runner-up) and
    ``best_description`` per class (probability: its similarity, evidence: its words)."""
    e = evidence
    rows = [
        _row(video, "margin", "", 0.0, duration, e.top, e.margin)
        | {"evidence": "uncertain" if e.uncertain else "clear"}
    ]
    for i in e.key_moments:
        m = e.moments[i]
        rows.append(
            _row(video, "key_moment", "", m.start, m.end, e.top, m.drop)
            | {"evidence": f"frame at {m.time:.3f} s"}
        )
    if e.against is not None and e.runner_up is not None:
        m = e.moments[e.against]
        rows.append(
            _row(video, "against", "", m.start, m.end, e.runner_up, m.runner_up_drop)
            | {"evidence": f"frame at {m.time:.3f} s"}
        )
    for w in e.words:
        sim = dict(w.items)[w.best]
        rows.append(
            _row(video, "best_description", "", 0.0, duration, w.name, sim) | {"evidence": w.best}
        )
    return rows


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
        "evidence": "",
    }
