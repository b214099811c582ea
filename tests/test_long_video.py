"""Long videos in bounded memory: peak RSS of an analysis does not grow with the duration.

Each clip is analysed in a fresh subprocess (tiny model, face detection on) that reports its peak
resident set size (``VmHWM`` in ``/proc/self/status``) before and after `EmotionPredictor.predict`.
The clips are 320x240 at 8 fps with a face moving across a noisy background; their frames repeat a
short cycle, so writing them is quick, and they are cached between runs in pytest's temporary
root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emoclip.testing.media import moving_face_frames, write_video

FPS = 8.0
SIZE = (240, 320)  # (H, W)
CYCLE = 32  # distinct frames: the face sweeps right, then back left (one track throughout)
PEAK_BOUND_MB = 1500  # absolute bound on the analysing process, tiny model
GROWTH_BOUND_MB = 40  # 1 min -> 4 min (a clip held in memory would add ~200 MB)

ANALYSE = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import emoclip
from emoclip.inference.predictor import EmotionPredictor

def peak_mb():
    with open("/proc/self/status") as fh:
        return int(next(l for l in fh if l.startswith("VmHWM")).split()[1]) / 1024

predictor = EmotionPredictor(emoclip.load_model("test-emoclip-tiny"), batch_size=32)
predictor.predict(sys.argv[2])  # warm up: detector, towers, allocator pools
before = peak_mb()
start = time.perf_counter()
pred = predictor.predict(sys.argv[1])
print(json.dumps({"before": before, "peak": peak_mb(), "seconds": time.perf_counter() - start,
                  "sampled": pred.faces.sampled_frames, "with_face": pred.faces.frames_with_face,
                  "duration": pred.video["duration"], "windows": len(pred.timeline),
                  "thumbnails": len(predictor.encode(sys.argv[1]).thumbnails)}))
"""


def _clip(folder: Path, seconds: int) -> Path:
    path = folder / f"face_{seconds}s_{SIZE[1]}x{SIZE[0]}_{FPS:g}fps_pingpong{CYCLE}.mp4"
    if not path.exists():
        sweep = list(moving_face_frames(CYCLE, size=SIZE))
        cycle = sweep + sweep[::-1]
        n = int(seconds * FPS)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.mp4")
        write_video(partial, (cycle[i % len(cycle)] for i in range(n)), FPS)
        os.replace(partial, path)  # concurrent runs never see a half-written clip
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.getbasetemp().parent / "emoclip-long-video-cache"
    folder.mkdir(exist_ok=True)
    return {seconds: _clip(folder, seconds) for seconds in (2, 60, 240)}


def _analyse(path: Path, warmup: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    out = subprocess.run(
        [sys.executable, "-c", ANALYSE, str(path), str(warmup)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_duration(clips):
    short, long = _analyse(clips[60], clips[2]), _analyse(clips[240], clips[2])
    print(f"\n1 min: {short}\n4 min: {long}")
    for result, seconds in ((short, 60), (long, 240)):
        assert result["peak"] < PEAK_BOUND_MB
        assert result["sampled"] == pytest.approx(seconds * 4, abs=2)  # tiny model: 4 fps
        assert result["with_face"] >= 0.9 * result["sampled"]
        assert abs(result["duration"] - seconds) < 1 and result["windows"] >= seconds - 2
        assert result["thumbnails"] <= 12
    growth = (long["peak"] - long["before"]) - (short["peak"] - short["before"])
    assert growth < GROWTH_BOUND_MB, (short, long)


def test_thumbnails_stay_bounded_and_spread():
    """The analysis keeps thumbnails every 0.5 s; over hours that list must not grow."""
    from emoclip.inference.timeline import Thumbnails

    thumbs = Thumbnails(cap=96)
    image = np.zeros((2, 2, 3), np.uint8)
    for i in range(2 * 3600 * 10):  # ten hours, one every 0.5 s
        thumbs.append((i * 0.5, image))
    times = np.array([t for t, _ in thumbs])
    assert 48 <= len(thumbs) <= 96 and times[0] == 0.0
    assert times[-1] > 36000 - 2 * np.diff(times).max()  # reaches the end of the clip
    assert np.diff(times).max() <= 1.01 * np.diff(times).min()  # evenly spread
