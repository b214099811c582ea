"""`BatchWorker`: the model-holding callable that Ray Data's actor pool maps over batches of inputs.

It loads the model and an `EmotionPredictor` once per actor, then turns each Arrow batch of input
rows (`schema.input_schema` + manifest columns) into result rows (`schema.result_fields`) plus a
``_windows`` column the driver splits off into the timeline table. A file that fails gets a row
with its error (the message `emoclip predict` prints) instead of stopping the batch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from emoclip.batch.fetch import local_copy
from emoclip.batch.schema import WINDOW_TYPE, input_schema, result_fields
from emoclip.classes import ClassSet
from emoclip.settings import ModelLocations
from emoclip.terminal import terminal_message

if TYPE_CHECKING:
    from emoclip.results import Prediction, TrackPrediction


class RepeatedCrashError(Exception):
    """An input whose analysis stopped its worker process too many times."""


def error_message(exc: BaseException) -> str:
    """The message `emoclip predict` prints for a failed file (typed errors as they are)."""
    if isinstance(exc, (ValueError, OSError, RepeatedCrashError)):
        return terminal_message(exc)
    return f"unexpected {type(exc).__name__}: {terminal_message(exc)}"


def track_row(track: TrackPrediction, names: list[str]) -> dict[str, Any]:
    """A track (a face of a photo) as JSON: id, primary, frames, span, box, probabilities (C,)."""
    return {
        "track_id": int(track.track_id),
        "primary": bool(track.primary),
        "num_frames": int(track.num_frames),
        "start": float(track.start),
        "end": float(track.end),
        "box": None if track.box is None else [float(v) for v in track.box],
        "probabilities": [float(track.probabilities[c]) for c in names],
    }


class BatchWorker:
    """Analyses batches of input rows with one model (what each Ray actor holds).

    Every row goes through the same predictor call as ``emoclip predict``: a video and a frame
    folder through `EmotionPredictor.predict` (frame folders at ``settings["frame_fps"]``), an
    image through `EmotionPredictor.predict_image` (every face, EXIF, alpha on white).

    Args:
        model: A model reference (`emoclip.weights.refs`): registry name, file or Hub id.
        classes: The class set.
        config_key: The run's provenance digest, written in every row (`plan.BatchPlan.key`).
        settings: The run's analysis settings (`plan.batch_settings`); the predictor is built
            from them, not from this node's environment.
        provenance: The run's provenance (`Provenance.as_dict()`), written in every row. When
            this worker's own model, classes and settings give another digest (the weights on
            this node differ from the driver's), every row gets an error instead of a result.
        weights_dirs: Extra folders with NAME.safetensors.
        locations: The driver's `ModelLocations` (explicit files, folders, Hub repo and
            revision): this node looks where the driver looked, whatever its environment.
        device: torch device of the model.
        threads: torch intra-op threads (and encode workers) of this actor; None keeps torch's.
        attempts: Handle of a Ray actor counting attempts per input (`run.AttemptCounter`): an
            input whose analysis killed the worker `max_attempts` times gets an error row instead
            of another try.
        max_attempts: See `attempts`.
    """

    def __init__(
        self,
        model: str,
        classes: ClassSet,
        config_key: str,
        *,
        settings: dict[str, Any],
        provenance: dict[str, Any] | None = None,
        weights_dirs: Sequence[str] = (),
        locations: ModelLocations | None = None,
        device: str = "cpu",
        threads: int | None = None,
        attempts: Any = None,
        max_attempts: int = 3,
    ) -> None:
        import torch

        from emoclip.batch.plan import predictor_settings
        from emoclip.inference.predictor import EmotionPredictor
        from emoclip.provenance import Provenance, model_identity, settings_dict
        from emoclip.weights.factory import load_model

        if threads:
            torch.set_num_threads(max(1, int(threads)))
        loaded = load_model(
            model, device=device, weights_dirs=list(weights_dirs), locations=locations
        )
        workers: dict[str, Any] = {"encode_workers": max(1, int(threads))} if threads else {}
        self.predictor = EmotionPredictor(
            loaded, predictor_settings(settings), video_cache_size=1, **workers
        )
        self.classes = classes
        self.config_key = config_key
        self.frame_fps = float(settings["frame_fps"])
        own = settings_dict(self.predictor) | {"frame_fps": self.frame_fps}
        mine = Provenance.build(model_identity(loaded), classes, own)
        self.mismatch = (
            None
            if mine.digest() == config_key
            else "this worker's model or settings differ from the driver's "
            f"(weights sha256 {mine.weights_sha256}, revision {mine.hub_revision}); not analysed"
        )
        self.provenance = json.dumps(provenance or mine.as_dict(), sort_keys=True)
        self.attempts = attempts
        self.max_attempts = max_attempts
        self.dim = int(loaded.embed_dim)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        """(B input rows) -> (B result rows): input columns, result columns, extras, ``_windows``."""
        rows = batch.to_pylist()
        out, windows = [], []
        for row in rows:
            result, wins = self.analyse(row)
            out.append(result)
            windows.append(wins)
        fields = [f for f in input_schema()] + result_fields(self.dim)
        table = pa.Table.from_pylist(out, schema=pa.schema(fields))
        base = set(table.column_names)
        for name in batch.column_names:
            if name not in base:
                table = table.append_column(batch.schema.field(name), batch.column(name))
        return table.append_column(
            pa.field("_windows", WINDOW_TYPE), pa.array(windows, type=WINDOW_TYPE)
        )

    def analyse(self, row: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One input row -> (result row, its windows); errors become the row's ``error``."""
        start = time.perf_counter()
        result = {k: row[k] for k in ("path", "name", "kind", "size", "mtime_ns", "input_key")}
        result |= {
            "config_key": self.config_key,
            "provenance": self.provenance,
            "model": self.predictor.model.config.name,
            "class_set": self.classes.name,
            "classes": self.classes.names,
            "warnings": [],
            "worker": self.worker,
        }
        windows: list[dict[str, Any]] = []
        try:
            if self.mismatch:
                raise RuntimeError(self.mismatch)
            self._check_attempts(row["input_key"])
            prediction = self.predict_row(row)
        except Exception as exc:  # one bad file never stops the batch: its row carries the error
            result["error"] = error_message(exc)
        else:
            names = prediction.classes
            result |= {
                "classes": names,
                "top": prediction.top,
                "scope": prediction.scope,
                "probabilities": [float(prediction.probabilities[c]) for c in names],
                "embedding": np.asarray(prediction.embedding, dtype=np.float32).tolist(),
                "sampled_frames": prediction.faces.sampled_frames,
                "frames_with_face": prediction.faces.frames_with_face,
                "tracks": prediction.faces.tracks,
                "track_results": json.dumps([track_row(t, names) for t in prediction.tracks]),
                "face_fraction": prediction.faces.frames_with_face
                / max(1, prediction.faces.sampled_frames),
                "duration": float(prediction.video.get("duration") or 0.0),
                "warnings": [str(w) for w in prediction.warnings],
                "timings": json.dumps(
                    {k: round(float(v), 6) for k, v in prediction.timings.items()}
                ),
                "evidence": None
                if prediction.evidence is None
                else json.dumps(prediction.evidence.to_dict(), ensure_ascii=False),
            }
            tl = prediction.timeline
            windows = [
                {"start": float(s), "end": float(e), "probabilities": p.astype(np.float32).tolist()}
                for s, e, p in zip(tl.starts, tl.ends, np.asarray(tl.probabilities))
            ]
        if self.attempts is not None:  # finished: a retry of its whole batch starts it from zero
            self.attempts.finish.remote(row["input_key"])
        result["seconds"] = time.perf_counter() - start
        return result, windows

    def predict_row(self, row: dict[str, Any]) -> Prediction:
        """One input row (``path``, ``kind``: video, image or frames) -> its `Prediction`, by the
        predictor call ``emoclip predict`` makes for that kind.

        The one place a row meets the predictor: subclasses override it to wrap or replace the
        analysis (the tests' crashing workers do). Errors propagate; `analyse` records them."""
        kind, path = row["kind"], row["path"]
        with local_copy(path, kind) as local:
            if kind == "image":
                prediction = self.predictor.predict_image(local, self.classes)
            else:
                fps = self.frame_fps if kind == "frames" else None
                prediction = self.predictor.predict(local, self.classes, fps=fps)
        prediction.video["name"] = os.path.basename(path.rstrip("/"))
        return prediction

    def _check_attempts(self, key: str) -> None:
        if self.attempts is None:
            return
        import ray

        n = ray.get(self.attempts.start.remote(key))
        if n > self.max_attempts:
            raise RepeatedCrashError(
                f"the worker analysing this input stopped {n - 1} times "
                f"(crashed or was killed); not tried again"
            )
