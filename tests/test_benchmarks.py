"""The benchmark (`python -m benchmarks.run`) on the tiny model and tiny clips: the whole machinery, and the work behind
each figure.

No timing assertions (the figures of a tiny random model on a shared machine mean nothing). What is
asserted does not depend on the machine's speed: the JSON's keys, sane numbers, and the work each
figure counted (frames decoded, crops encoded, texts encoded, windows pooled; `WorkCounter`), so a
change that re-encodes frames or texts, or pools more than the timeline's windows, fails here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow
CLIP_SECONDS, CLIP_FPS = 3, 30  # the generated P2-P4 clip (benchmarks.clips writes 30 fps)


def _work(**counts: int) -> dict[str, int]:
    return {
        "frames_decoded": 0,
        "crops_encoded": 0,
        "texts_encoded": 0,
        "windows_pooled": 0,
    } | counts


def _pooled_ok(pooled: int, windows: int, tracks: int, moments: int) -> bool:
    """The clip, each timeline window and each track pooled once (the subject's track may share the
    clip's row), and the clip once without each of its `moments` (the evidence)."""
    return windows + tracks + moments <= pooled <= 1 + windows + tracks + moments


def test_benchmark_runs_end_to_end_on_the_tiny_model(repo_root, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--quick",
        "--model",
        "test-emoclip-tiny",
        "--repeats",
        "1",
        "--clip-seconds",
        str(CLIP_SECONDS),
        "--clip-size",
        "320x240",
        "--long-seconds",
        "5",
        "--p7-seconds",
        "4",
        "--p7-size",
        "320x240",
        "--p8-points",
        "150",
        "--p8-methods",
        "tsne",
        "--p6-frames",
        "4",
        "--no-app",
        "--p10-clips",
        "3",
        "--p11-points",
        "1500",
        "--cache-dir",
        str(tmp_path / "videos"),
        "--json",
        str(out),
    ]
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(repo_root),
        "EMOCLIP_TOWER_CACHE": str(tmp_path / "tower"),  # this test's choices, not ~/.cache
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for key in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12"):
        assert f"{key} = " in proc.stdout  # each figure is printed

    data = json.loads(out.read_text())
    keys = [f"P{i}" for i in range(1, 13)]
    assert all(
        isinstance(data[k], float) and math.isfinite(data[k]) and data[k] > 0 for k in keys
    ), data
    assert data["precision"] == "fp32"  # "auto" keeps the tiny tower in fp32
    assert 0 < data["P1"] <= 2.0  # a fraction of the GEMM peak (tiny towers are far below it)
    # timings move with the machine's load: only their presence is checked here; the work behind
    # each figure is counted and checked below
    assert data["P4"] < 10_000 and data["P6"] > 0.1
    assert 0.05 < data["P7"] < 24  # GB, of a real process
    details = data["details"]
    assert details["P1"]["gflop_per_frame"] > 0 and details["P1"]["fp32"]["gemm_peak_gflops"] > 0
    assert details["P2"]["sampled_frames"] == details["P2"]["crops"] > 0
    assert (
        details["P5"]["windows"] >= 2
        and details["P5"]["naive_frame_encodings"] > details["P5"]["crops"]
    )
    assert details["P6"]["handler"].startswith("predictor path")
    assert details["P7"]["sampled_frames"] > 0 and details["P8"]["tsne"]["best_s"] > 0
    assert (
        details["P10"]["clips"] == 3
        and details["P10"]["batch_s"] > 0
        and details["P10"]["predict_s"] > 0
    )
    assert details["P11"]["points"] == 1500 and details["P11"]["query_ms"] > 0
    # the group photo: five real faces found end to end, in the library and by the CLI
    assert (
        details["P9"]["faces"] == 5
        and details["P9"]["cli_faces"] == 5
        and details["P9"]["cli_cold_s"] > 0
    )
    assert data["machine"]["logical_cpus"] >= 1 and data["targets"]["P1"] == ">= 0.85"
    assert "naive frame-by-frame pipeline modelled on the authors' data loading" in proc.stdout
    assert "reference-style" not in proc.stdout and details["P3"]["baseline"].startswith(
        "a naive frame-by-frame"
    )

    # counted work, per timed call of each figure
    p1 = details["P1"]["work"]
    assert (
        p1["tower_call"] == p1["encode_images_call"] == _work(crops_encoded=details["P1"]["batch"])
    )
    p2 = details["P2"]["work"]
    sampled, windows = details["P2"]["sampled_frames"], details["P2"]["windows"]
    analysis = p2["analysis"]
    assert analysis["frames_decoded"] == sampled  # only the sampled frames are converted
    assert analysis["crops_encoded"] == details["P2"]["crops"] == sampled  # each crop encoded once
    assert analysis["texts_encoded"] == 0  # the class texts were cached by the warm-up analysis
    moments = details["P2"]["evidence_moments"]
    assert moments > 0
    assert _pooled_ok(analysis["windows_pooled"], windows, details["P2"]["tracks"], moments)
    assert p2["encoding"] == _work(crops_encoded=sampled)

    p3 = details["P3"]
    assert (
        p3["warmup_runs"] == 1
        and len(p3["ours_all_s"]) == len(p3["naive_all_s"]) == p3["timed_runs"]
    )
    assert p3["work"]["ours"] == analysis  # the same analysis as P2
    frames_per_window = p3["frames_per_window"]
    assert p3["work"]["naive"] == _work(
        frames_decoded=CLIP_SECONDS * CLIP_FPS,  # every frame converted into PIL
        crops_encoded=(1 + windows)
        * frames_per_window,  # the clip and each window encode their frames again
        texts_encoded=p3["texts"],  # every class text, every call
        windows_pooled=1 + windows,
    )
    assert p3["work"]["naive"]["crops_encoded"] > analysis["crops_encoded"]

    assert details["P4"]["work"]["edit"] == _work(texts_encoded=1)  # only the edited description
    p5 = details["P5"]
    assert p5["work"]["encoding"] == _work(crops_encoded=p5["crops"])
    assert p5["work"]["pooling"] == _work(
        windows_pooled=1 + p5["windows"]
    )  # the clip and every window
    assert p5["work"]["analysis"]["crops_encoded"] == p5["crops"] == p5["sampled_frames"]
    assert p5["work"]["analysis"]["frames_decoded"] == p5["sampled_frames"]
    assert p5["work"]["analysis"]["texts_encoded"] == 0
    assert _pooled_ok(
        p5["work"]["analysis"]["windows_pooled"],
        p5["timeline_windows"],
        p5["tracks"],
        p5["evidence_moments"],
    )
    assert p5["naive_frame_encodings"] == p5["windows"] * frames_per_window
    # a webcam frame: one crop encoded, one window pooled, no text re-encoded
    assert details["P6"]["work"]["frame"] == _work(crops_encoded=1, windows_pooled=1)
    p7 = details["P7"]["work"]["analysis"]  # a fresh process: the class texts are encoded once
    assert p7["frames_decoded"] == p7["crops_encoded"] == details["P7"]["sampled_frames"]
    assert p7["texts_encoded"] == p3["texts"]
    p7_details = details["P7"]
    assert _pooled_ok(
        p7["windows_pooled"],
        p7_details["windows"],
        p7_details["tracks"],
        p7_details["evidence_moments"],
    )

    p8 = details["P8"]  # the first projection a user waits for, beside the warm figure
    assert data["P8_first_projection_s"] == p8["first_projection_s"] == p8["tsne"]["first_s"]
    assert (
        p8["tsne"]["first_s"] >= p8["tsne"]["import_s"] > 0 and data["P8"] == p8["tsne"]["best_s"]
    )
    assert p8["work"]["projection"] == _work()

    # evidence: no frame decoded, no crop or text encoded, the clip pooled once per moment; after
    # an edited description only that text is embedded and nothing is pooled again
    p12 = details["P12"]
    assert p12["moments"] > 0 and p12["work"]["evidence"] == _work(windows_pooled=p12["moments"])
    assert p12["work"]["edit"] == _work(texts_encoded=1)
    assert p12["work"]["analysis"] == analysis  # the same analysis as P2, evidence included


def test_the_work_counter_sees_re_encoding(tiny_model, tmp_path):
    """What `WorkCounter` counts changes when work is redone: re-encoding frames or texts shows."""
    import emoclip
    from benchmarks.work import WorkCounter
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.media import frames as video_frames
    from emoclip.model.network import EmoCLIP
    from emoclip.testing.media import moving_face_frames, write_video

    real_encode_image, real_to_rgb = EmoCLIP.encode_image, video_frames.to_rgb
    counter = WorkCounter().install()
    try:
        p = EmotionPredictor(tiny_model, batch_size=8, prefetch=False)
        classes = emoclip.preset("dfew-7")
        path = write_video(tmp_path / "c.webm", moving_face_frames(24, size=(240, 320)), fps=12)
        before = counter.snapshot()
        pred = p.predict(path, classes)
        first = counter.since(before)
        n = pred.faces.sampled_frames
        assert first["frames_decoded"] == first["crops_encoded"] == n > 0
        assert first["texts_encoded"] == len(classes.texts)
        moments = len(pred.evidence.moments) if pred.evidence is not None else 0
        assert _pooled_ok(first["windows_pooled"], len(pred.timeline), len(pred.tracks), moments)

        before = counter.snapshot()
        p.predict(path, classes)  # cached encoding and texts: nothing redone
        assert counter.since(before) == _work()

        assert p.encode(path) is p.encode(path)  # the analysed video is kept, not re-encoded
        p.close()
        before = counter.snapshot()
        p = EmotionPredictor(tiny_model, batch_size=8, prefetch=False)  # nothing cached
        crops = np.zeros((3, tiny_model.image_size, tiny_model.image_size, 3), np.uint8)
        p.parts.encoder.encode(crops)
        p.parts.encoder.encode(crops)  # re-encoded: counted again
        p.predict(path, classes)
        again = counter.since(before)
        assert again["crops_encoded"] == 6 + n and again["texts_encoded"] == len(classes.texts)
        assert again["frames_decoded"] == n

        before = counter.snapshot()
        with (
            torch.inference_mode()
        ):  # outside a predictor (the naive P3 pipeline's path): counted too
            tiny_model.encode_video(
                torch.randn(2, 4, 3, tiny_model.image_size, tiny_model.image_size)
            )
        assert counter.since(before) == _work(crops_encoded=8, windows_pooled=2)
        p.close()
    finally:
        counter.uninstall()
    # the library is left as it was
    assert EmoCLIP.encode_image is real_encode_image and video_frames.to_rgb is real_to_rgb
