"""`WorkCounter`: the work the library does behind each figure (frames decoded, crops encoded,
texts encoded, windows pooled), counted whatever the machine's speed; `WORK` is the one installed
by a benchmark run, `same_work` the work of one timed call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class WorkCounter:
    """Counts the work the library does, whatever the machine's speed, while installed.

    * ``frames_decoded``: video frames decoded into RGB arrays (`emoclip.media.frames.to_rgb`; the frames
      between samples are only ``grab()``-ed), plus the frames the naive P3 pipeline converts;
    * ``crops_encoded``: frames through an image tower (a predictor's tower, or
      `EmoCLIP.encode_image` called outside one);
    * ``texts_encoded``: texts through the text tower (`EmoCLIP.encode_text`, or open_clip's
      ``CLIP.encode_text`` called outside it);
    * ``windows_pooled``: sequences through the temporal model (`FastTemporal` or `EmoCLIP.aggregate`).

    Class attributes are patched (so every predictor, the app's too, is counted) and restored by
    `uninstall`; the counts are taken under a lock (the decode thread and encode workers count too).
    """

    KEYS = ("frames_decoded", "crops_encoded", "texts_encoded", "windows_pooled")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.KEYS, 0)
        self._lock = threading.Lock()
        self._inside = threading.local()  # a tower's own inner call is not counted twice
        self._undo: list[tuple[Any, str, Any]] = []

    def add(self, key: str, n: int = 1) -> None:
        """Counts `n` more of `key` (one of `KEYS`)."""
        with self._lock:
            self.counts[key] += int(n)

    def snapshot(self) -> dict[str, int]:
        """The counts so far, a copy."""
        with self._lock:
            return dict(self.counts)

    def since(self, before: dict[str, int]) -> dict[str, int]:
        """The work counted since `before` (a `snapshot`)."""
        now = self.snapshot()
        return {k: now[k] - before[k] for k in self.KEYS}

    def install(self) -> WorkCounter:
        """Wraps the library's counted methods (once; again is a no-op) and returns this counter."""
        if self._undo:
            return self
        from open_clip.model import CLIP

        from emoclip.inference import fast_paths, precision
        from emoclip.media import frames as video_frames
        from emoclip.model import network as model_mod

        counter = self

        def wrap(
            owner: Any,
            name: str,
            key: str,
            rows: Callable[..., int],
            scope: str | None = None,
            outer: str | None = None,
        ) -> None:
            real = getattr(owner, name)

            def counted(*args, **kwargs):
                if outer is None or not getattr(counter._inside, outer, False):
                    counter.add(key, rows(*args, **kwargs))
                if scope is None:
                    return real(*args, **kwargs)
                previous = getattr(counter._inside, scope, False)
                setattr(counter._inside, scope, True)
                try:
                    return real(*args, **kwargs)
                finally:
                    setattr(counter._inside, scope, previous)

            self._undo.append((owner, name, real))
            setattr(owner, name, counted)

        wrap(video_frames, "to_rgb", "frames_decoded", lambda *a, **k: 1)
        wrap(precision.Tower, "__call__", "crops_encoded", lambda self, x: len(x), scope="image")
        wrap(
            model_mod.EmoCLIP,
            "encode_image",
            "crops_encoded",
            lambda self, x: len(x),
            outer="image",
        )
        wrap(
            model_mod.EmoCLIP,
            "encode_text",
            "texts_encoded",
            lambda self, t, *a, **k: len(t),
            scope="text",
        )
        wrap(CLIP, "encode_text", "texts_encoded", lambda self, t, *a, **k: len(t), outer="text")
        wrap(fast_paths.FastTemporal, "__call__", "windows_pooled", lambda self, x: len(x))
        wrap(model_mod.EmoCLIP, "aggregate", "windows_pooled", lambda self, x, *a, **k: len(x))
        return self

    def uninstall(self) -> None:
        """Puts the library's methods back as they were."""
        while self._undo:
            owner, name, real = self._undo.pop()
            setattr(owner, name, real)


WORK = WorkCounter()


def same_work(runs: list[dict[str, int]]) -> dict[str, Any]:
    """The work of one timed run when every run did the same, else ``{"varied": runs}`` (which the
    tests reject: a run that re-encodes what an earlier one cached shows up here)."""
    if not runs:
        raise ValueError("no timed run recorded its work")
    return dict(runs[0]) if all(r == runs[0] for r in runs[1:]) else {"varied": runs}
