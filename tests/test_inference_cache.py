"""The predictor's video cache (`emoclip.inference.cache`)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from emoclip.inference.cache import EncodingCache
from emoclip.media import VideoDecodeError
from emoclip.media.inputs import resolve_input


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
    assert cache.get("b", "copy.mp4").video["name"] == "copy.mp4"  # same content, other name
    assert cache.get("b").video["name"] == "b.mp4"
    cache.clear()
    assert len(cache) == 0 and cache.keys() == []


def test_content_key_follows_content(tmp_path: Path) -> None:
    first = tmp_path / "a.jpg"
    first.write_bytes(b"x" * 5000)  # not decoded: an image suffix without an image is refused
    video = tmp_path / "a.mp4"
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    one, two = resolve_input(frames), resolve_input(frames.copy())
    assert one.key == two.key != resolve_input(frames[:1]).key
    assert one.kind == "frames" and one.frames == 2
    with pytest.raises(VideoDecodeError, match="not found"):
        resolve_input(video)
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(3):
        import cv2

        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    a = resolve_input(folder)
    shutil.copytree(folder, tmp_path / "copy", copy_function=shutil.copy2)
    assert resolve_input(tmp_path / "copy").key == a.key  # names, sizes and mtimes
    assert a.kind == "frame_folder" and a.fps == 25.0 and a.frames == 3
    assert resolve_input(folder, fps=10).fps == 10.0
    assert resolve_input(f"file://{folder}").key == a.key  # a file:// URI is its path
