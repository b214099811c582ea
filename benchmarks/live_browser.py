"""P6e, the webcam end to end: the app served, Chromium with a fake camera (a y4m file made with
ffmpeg) streaming into the Live tab; processed frames/s and the latency from capture to label
as the page sees them (`emoclip_app/page.js` measures the latency; the frame counter in the
info line counts processed frames)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def fake_camera(
    path: Path, source: Path | None = None, seconds: float = 6.0, fps: int = 30
) -> Path:
    """A 640x480 y4m camera file made with ffmpeg from `source` (a video; looped, with its
    reversal so the loop has no jump) or, without one, a generated clip with a moving face."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is needed to make the fake camera file")
    if source is None:
        from emoclip.testing.media import moving_face_frames, write_video

        source = write_video(
            path.with_suffix(".webm"), moving_face_frames(48, size=(480, 640), seed=8), fps=12
        )
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(source),
            "-t", f"{seconds:g}", "-vf", f"scale=640:480,fps={fps}", "-pix_fmt", "yuv420p",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure_live(page: Any, seconds: float = 10.0, warmup: float = 4.0) -> dict[str, float]:
    """Start the Live tab's webcam on `page` (the app open) and measure for `seconds` after
    `warmup`: processed frames/s (the info line's frame counter over the page's clock) and the
    median capture-to-label latency the page measured."""
    page.get_by_role("tab", name="Live webcam").click()
    page.get_by_role("button", name="Click to Access Webcam").click()
    page.locator("#live-cam button[aria-label='capture photo']").click()
    page.wait_for_function(
        "/frame #\\d+/.test(document.querySelector('#live-fps').innerText)", timeout=120_000
    )
    page.wait_for_timeout(int(warmup * 1000))

    def counter() -> tuple[float, int]:
        text = page.locator("#live-fps").inner_text()
        return time.monotonic(), int(re.search(r"frame #(\d+)", text).group(1))

    t0, n0 = counter()
    page.wait_for_timeout(int(seconds * 1000))
    t1, n1 = counter()
    latencies = page.evaluate("window.emoclipLatencies.slice()")
    info = page.locator("#live-fps").inner_text()
    stop = page.locator("#live-cam button", has_text="Stop")
    if stop.count():
        stop.first.click()
    latencies.sort()
    return {
        "fps": (n1 - n0) / (t1 - t0),
        "latency_ms": latencies[len(latencies) // 2] if latencies else float("nan"),
        "latency_samples": len(latencies),
        "server_fps": float(re.search(r"Processed: ([0-9.]+)", info).group(1)),
        "ms_per_frame": float(re.search(r"\(([0-9.]+) ms per frame\)", info).group(1)),
    }


def bench_p6e(model, seconds: float = 10.0, folder: Path | None = None) -> dict[str, Any]:
    """The app serving `model` and Chromium's fake camera: end-to-end frames/s and latency."""
    import tempfile

    from playwright.sync_api import sync_playwright

    import emoclip_app
    from emoclip_app import models
    from emoclip_app.headless import launch_chromium

    folder = Path(folder or tempfile.mkdtemp(prefix="emoclip-p6e-"))
    camera = fake_camera(folder / "camera.y4m")
    name = model.config.name
    models.MODELS.forced = name  # ranked first: the page runs it even if others load
    models.MODELS.inject(name, model)
    demo = emoclip_app.build_demo().queue(**emoclip_app.QUEUE)
    _, url, _ = demo.launch(
        prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port(),
        **emoclip_app.launch_options(),
    )  # fmt: skip
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, camera)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(url, wait_until="load")
            page.wait_for_selector("#model-status")
            page.wait_for_function(
                "document.querySelector('#model-status').innerText.includes('Model:')"
            )
            res = measure_live(page, seconds)
            browser.close()
    finally:
        demo.close()
    res["P6e"] = res["fps"]
    return res
