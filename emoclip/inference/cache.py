"""The predictor's video cache: `EncodingCache` (the last encodings, by key), the content keys of
inputs, and cached encodings renamed on a hit.

A video is keyed by its content (size, first and last MiB of a file; names, sizes and mtimes of a
frame folder's frames; the bytes of an array) plus the predictor's settings, so a copy of a file
hits the cache and a changed setting does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from emoclip.inference.encoding import VideoEncoding
from emoclip.media import VideoDecodeError
from emoclip.media.images import frame_folder
from emoclip.media.inputs import VideoInput

__all__ = ["EncodingCache", "content_key", "named"]


def content_key(video: VideoInput, settings: str) -> str:
    """SHA-1 hex key of `video`'s content and the `settings` string that shaped its encoding.

    Raises:
        VideoDecodeError: A missing file, or a folder that is not a clip of numbered frames.
    """
    h = hashlib.sha1()
    if isinstance(video, (str, os.PathLike)) and Path(video).is_dir():
        folder = frame_folder(video)
        if folder is None:
            raise VideoDecodeError(
                f"'{Path(video).name}' is a folder but not a clip: its files are not all "
                "images numbered with one common pattern (e.g. 00001.jpg, 00002.jpg, ...)"
            )
        for q in folder.frames:
            st = q.stat()
            h.update(f"{q.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    elif isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if not path.is_file():
            raise VideoDecodeError(f"file not found: {path.name}")
        size = path.stat().st_size
        h.update(str(size).encode())
        with open(path, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    else:
        arr = np.ascontiguousarray(np.asarray(video))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    h.update(settings.encode())
    return h.hexdigest()


def named(encoding: VideoEncoding, video: VideoInput) -> VideoEncoding:
    """A cached encoding under the name of the file asked for: the cache is keyed by content, so
    a copy of a video under another name must not report the first file's name."""
    if isinstance(video, (str, os.PathLike)) and encoding.video.get("name") != Path(video).name:
        return dataclasses.replace(encoding, video=encoding.video | {"name": Path(video).name})
    return encoding


class EncodingCache:
    """The `size` most recently used encodings by `content_key`, safe to share between threads.

    Args:
        size: Encodings kept; the least recently used is dropped first.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, VideoEncoding] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, video: VideoInput) -> VideoEncoding | None:
        """The cached encoding under `key`, named after `video` (see `named`), or None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return named(self._items[key], video)
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
