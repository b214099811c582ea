"""The predictor's video cache: `EncodingCache` (the last encodings, by key) and cached encodings
renamed on a hit.

The predictor keys an encoding by its input's content key (`media.inputs.MediaInput.key`) plus the
settings that shaped it, so a copy of a file hits the cache and a changed setting does not.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

from emoclip.inference.encoding import VideoEncoding

__all__ = ["EncodingCache", "named"]


def named(encoding: VideoEncoding, name: str | None) -> VideoEncoding:
    """A cached encoding under the name asked for: the cache is keyed by content, so a copy of a
    video under another name must not report the first file's name (None keeps the name)."""
    if name is not None and encoding.video.get("name") != name:
        return dataclasses.replace(encoding, video=encoding.video | {"name": name})
    return encoding


class EncodingCache:
    """The `size` most recently used encodings by key, safe to share between threads.

    Args:
        size: Encodings kept; the least recently used is dropped first.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, VideoEncoding] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, name: str | None = None) -> VideoEncoding | None:
        """The cached encoding under `key`, named `name` (see `named`), or None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return named(self._items[key], name)
        return None

    def put(self, key: str, encoding: VideoEncoding) -> None:
        """Keep `encoding` under `key`, dropping the least recently used beyond `size`."""
        with self._lock:
            self._items[key] = encoding
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every encoding."""
        with self._lock:
            self._items.clear()

    def keys(self) -> list[str]:
        """The cached encodings' keys, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        """How many encodings are cached."""
        with self._lock:
            return len(self._items)
