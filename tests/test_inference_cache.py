"""The predictor's video cache (`emoclip.inference.cache`)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from emoclip.inference.cache import EncodingCache, content_key
from emoclip.media import VideoDecodeError


@dataclasses.dataclass(frozen=True)
class _Encoding:  # what the cache needs of a `VideoEncoding`: a frozen dataclass with `video`
    video: dict


def test_cache_keeps_the_most_recently_used_and_renames_hits(tmp_path: Path) -> None:
    cache = EncodingCache(2)
    for key in "abc":
        cache.put(key, _Encoding({"name": f"{key}.mp4"}))
    assert len(cache) == 2 and cache.get("a", "a.mp4") is None  # the oldest was dropped
    assert cache.keys() == ["b", "c"]  # least recently used first
    assert cache.get("b", "b.mp4") == _Encoding({"name": "b.mp4"})
    assert cache.keys() == ["c", "b"]  # a hit makes "b" the most recently used
    cache.put("d", _Encoding({"name": "d.mp4"}))  # "b" was used last: "c" goes
    assert cache.keys() == ["b", "d"]
    assert cache.get("c", "c.mp4") is None and cache.get("b", "b.mp4") is not None
    assert (
        cache.get("b", tmp_path / "copy.mp4").video["name"] == "copy.mp4"
    )  # same content, other name
    assert cache.get("b", np.zeros((2, 4, 4, 3), np.uint8)).video["name"] == "b.mp4"
    cache.clear()
    assert len(cache) == 0 and cache.keys() == []


def test_content_key_follows_content_and_settings(tmp_path: Path) -> None:
    first = tmp_path / "a.mp4"
    first.write_bytes(b"x" * 5000)
    copy = tmp_path / "b.mp4"
    shutil.copy(first, copy)
    assert content_key(first, "s") == content_key(copy, "s") != content_key(first, "t")
    copy.write_bytes(b"y" * 5000)
    assert content_key(first, "s") != content_key(copy, "s")
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    assert content_key(frames, "s") != content_key(frames[:1], "s")
    with pytest.raises(VideoDecodeError, match="not found"):
        content_key(tmp_path / "missing.mp4", "s")
