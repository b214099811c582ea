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

from emoclip.batch.schema import WINDOW_TYPE, input_schema, result_fields
from emoclip.classes import ClassSet
from emoclip.settings import AnalysisSettings
from emoclip.terminal import terminal_message

if TYPE_CHECKING:
    from emoclip.results import Prediction


class RepeatedCrashError(Exception):
    """An input whose analysis stopped its worker process too many times."""


def error_message(exc: BaseException) -> str:
    """The message `emoclip predict` prints for a failed file (typed errors as they are)."""
    if isinstance(exc, (ValueError, OSError, RepeatedCrashError)):
        return terminal_message(exc)
    return f"unexpected {type(exc).__name__}: {terminal_message(exc)}"


class BatchWorker:
    """Analyses batches of input rows with one model (what each Ray actor holds).

    Args:
        model: Registry name or ``.safetensors`` path (`load_model`).
        classes: The class set (None: the model's own).
        config_key: The run's configuration key, written in every row (`run.config_key`).
        weights_dirs: Extra folders with NAME.safetensors.
        device: torch device of the model.
        face_fallback: ``"center"`` or ``"skip"`` (as `emoclip predict --fallback`).
        threads: torch intra-op threads (and encode workers) of this actor; None keeps torch's.
        frame_fps: Frame rate of frame folders (default: ``settings.frame_folder_fps``, 25 fps,
            as `emoclip predict`).
        settings: The analysis settings (default: `AnalysisSettings()`); `face_fallback`,
            `threads` and a one-entry video cache apply on top.
        attempts: Handle of a Ray actor counting attempts per input (`run.AttemptCounter`): an
            input whose analysis killed the worker `max_attempts` times gets an error row instead
            of another try.
        max_attempts: See `attempts`.
    """

    def __init__(
        self,
        model: str,
        classes: ClassSet | None,
        config_key: str,
        *,
        weights_dirs: Sequence[str] = (),
        device: str = "cpu",
        face_fallback: str = "center",
        threads: int | None = None,
        frame_fps: float | None = None,
        settings: AnalysisSettings | None = None,
        attempts: Any = None,
        max_attempts: int = 3,
    ) -> None:
        import torch

        from emoclip.inference.predictor import EmotionPredictor
        from emoclip.weights.factory import load_model

        if threads:
            torch.set_num_threads(max(1, int(threads)))
        loaded = load_model(model, device=device, weights_dirs=list(weights_dirs))
        workers = {"encode_workers": max(1, int(threads))} if threads else {}
        self.predictor = EmotionPredictor(
            loaded, settings, face_fallback=face_fallback, video_cache_size=1, **workers
        )
        self.classes = classes or self.predictor.default_classes()
        self.config_key = config_key
        self.frame_fps = frame_fps
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
            "model": self.predictor.model.config.name,
            "class_set": self.classes.name,
            "classes": self.classes.names,
            "warnings": [],
            "worker": self.worker,
        }
        windows: list[dict[str, Any]] = []
        try:
            self._check_attempts(row["input_key"])
            prediction = self.predict_row(row)
        except Exception as exc:  # one bad file never stops the batch: its row carries the error
            result["error"] = error_message(exc)
        else:
            names = prediction.classes
            result |= {
                "classes": names,
                "top": prediction.top,
                "probabilities": [float(prediction.probabilities[c]) for c in names],
                "embedding": np.asarray(prediction.embedding, dtype=np.float32).tolist(),
                "sampled_frames": prediction.faces.sampled_frames,
                "frames_with_face": prediction.faces.frames_with_face,
                "tracks": prediction.faces.tracks,
                "face_fraction": prediction.faces.frames_with_face
                / max(1, prediction.faces.sampled_frames),
                "duration": float(prediction.video.get("duration") or 0.0),
                "warnings": [str(w) for w in prediction.warnings],
                "timings": json.dumps(
                    {k: round(float(v), 6) for k, v in prediction.timings.items()}
                ),
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
        """One input row (its ``path``) -> its `Prediction`, as `emoclip predict` gives it: the
        predictor's input layer decides what the input is (video, photo with every face, frame
        folder at `frame_fps`).

        The one place a row meets the predictor: subclasses override it to wrap or replace the
        analysis (the tests' crashing workers do). Errors propagate; `analyse` records them."""
        return self.predictor.predict(row["path"], self.classes, fps=self.frame_fps)

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
