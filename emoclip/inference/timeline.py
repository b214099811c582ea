"""Times along a clip: its duration, the timeline's overlapping windows and the frames each one
pools, and thumbnails kept evenly spread in bounded memory."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from emoclip.media import sample_indices

__all__ = [
    "THUMBNAIL_SIZE",
    "Thumbnails",
    "clip_duration",
    "spread",
    "window_picks",
    "window_spans",
]

THUMBNAIL_SIZE = 96  # pixels: the side of a thumbnail crop

T = TypeVar("T")


def window_spans(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """Overlapping ``(start, end)`` windows covering ``[0, duration]``.

    Windows of `window` seconds every `hop` seconds; a clip shorter than one window gets one
    window over the whole clip; a final window is aligned to the end when the last regular one
    stops more than half a hop short of it.
    """
    if duration <= window:
        return [(0.0, max(duration, 1e-3))]
    spans = [(s, s + window) for s in np.arange(0.0, duration - window + 1e-9, hop)]
    if duration - spans[-1][1] > hop / 2:
        spans.append((duration - window, duration))
    return [(float(s), float(e)) for s, e in spans]


def window_picks(
    times: np.ndarray, duration: float, window: float, hop: float, num_frames: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The timeline windows (`window_spans`) that hold frames of `times` ((M,) seconds).

    Returns:
        ``(starts (W,), ends (W,), picks)``: each window's `num_frames` indices into `times`
        (frames spread over the window, repeated when it holds fewer).
    """
    starts, ends, picks = [], [], []
    for s, e in window_spans(duration, window, hop):
        idx = np.flatnonzero((times >= s - 1e-6) & (times < e - 1e-6))
        if len(idx):
            starts.append(s)
            ends.append(e)
            picks.append(idx[sample_indices(len(idx), num_frames)])
    return np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64), picks


def clip_duration(times: np.ndarray, meta: dict[str, Any]) -> float:
    """A clip's length in seconds: past its last sampled frame (`times`, (N,) seconds) by one
    frame at ``meta["fps"]``, or the container's ``meta["duration"]`` when that is longer."""
    step = 1.0 / max(float(meta.get("fps") or 1.0), 1e-3)
    observed = float(times[-1]) + step if len(times) else 0.0
    return (
        max(observed, float(meta.get("duration") or 0.0))
        if observed
        else float(meta.get("duration") or 0.0)
    )


class Thumbnails(list[tuple[float, np.ndarray]]):
    """(time, thumbnail) pairs in bounded memory: past `cap` of them every other one is dropped
    and later ones are kept only as far apart as the survivors, so any clip length stays evenly
    covered (a plain list grew by 55 kB per second of video)."""

    def __init__(self, cap: int = 96) -> None:
        super().__init__()
        self.cap, self.spacing = cap, 0.0

    def append(self, item: tuple[float, np.ndarray]) -> None:
        """Keep `item` unless it follows the last kept one by less than the current spacing."""
        if self and item[0] - self[-1][0] < self.spacing - 1e-9:
            return
        super().append(item)
        if len(self) > self.cap:
            del self[1::2]
            self.spacing = (self[-1][0] - self[0][0]) / max(len(self) - 1, 1)


def spread(items: list[T], k: int) -> list[T]:
    """At most `k` of `items`, evenly spaced, first and last included."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]
