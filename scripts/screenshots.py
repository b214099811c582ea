"""Regenerate the README screenshots by driving the real app in headless Chromium.

    python scripts/screenshots.py                 # the app's default model (best available)
    python scripts/screenshots.py --test-model    # the random-weight test model (no weights needed)

Starts the app in-process on a free port, uses the first example clip in assets/ (or a generated
clip with a face), and writes small palette PNGs (< 300 KB each) to docs/screenshots/:
analyse.png, classes.png, explorer.png, live.png, phone.png (390 px wide). Needs Playwright and /usr/bin/chromium (or
--chromium PATH); works offline.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_BYTES = 300_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument(
        "--video", type=Path, default=None, help="clip to analyse (default: first example)"
    )
    parser.add_argument(
        "--test-model", action="store_true", help="use the random-weight test model"
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if args.test_model:
        os.environ["EMOCLIP_APP_TEST_MODEL"] = "1"
        os.environ["EMOCLIP_APP_MODEL"] = "test-emoclip-tiny"
    import emoclip_app  # after the environment above: the app reads it on import
    from emoclip_app import models, settings

    work = Path(tempfile.mkdtemp(prefix="emoclip-shots-"))
    # The synthetic clips are what the offline toy model understands; prefer them.
    examples = settings.EXAMPLES
    example = next(
        (p for p in examples if p.name.startswith("synthetic-")), examples[0] if examples else None
    )
    video = args.video or example or _generated_clip(work)
    webcam = _webcam_file(work, example)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    models.MODELS.start()
    if not models.MODELS.wait_ready(600):
        print("no model could be loaded; try --test-model", file=sys.stderr)
        return 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = emoclip_app.build_demo().queue(**emoclip_app.QUEUE)
    _, url, _ = demo.launch(
        prevent_thread_lock=True,
        quiet=True,
        server_name="127.0.0.1",
        server_port=port,
        **emoclip_app.launch_options(),
    )
    print(f"model {models.MODELS.default}; serving after {time.monotonic() - t0:.1f} s at {url}")
    try:
        _drive(url, video, webcam, args)
    finally:
        demo.close()
    for png in sorted(args.out.glob("*.png")):
        print(
            f"{png.relative_to(REPO) if png.is_relative_to(REPO) else png}: {png.stat().st_size / 1e3:.0f} KB"
        )
    return 0


def _drive(url: str, video: Path, webcam: Path, args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    from emoclip_app.headless import launch_chromium

    with sync_playwright() as pw:
        browser = launch_chromium(pw, webcam, executable=args.chromium)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(url, wait_until="load")
        page.wait_for_selector("#model-status")
        page.wait_for_function(
            "document.querySelector('#model-status').innerText.includes('Model:')"
        )

        page.locator("#video-input input[type=file]").first.set_input_files(str(video))
        page.wait_for_selector("#video-input video")
        page.click("#analyse-btn")
        page.wait_for_selector("#timeline-plot .js-plotly-plot")
        page.wait_for_timeout(800)
        _shot(page, args.out / "analyse.png", height=1350)

        page.get_by_role("tab", name="Classes & compounds").click()
        parts = page.locator("#compound-parts")
        labels = [t.strip() for t in parts.locator("label").all_inner_texts()]
        wanted = [n for n in ("happiness", "surprise") if n in labels] or labels[:1] + labels[4:5]
        for name in wanted[:2] if len(wanted) >= 2 else labels[:2]:
            parts.get_by_label(name, exact=True).check()
        page.locator("#compound-name textarea").first.press_sequentially("happily surprised")
        page.wait_for_function(
            "document.querySelector('#compound-preview').innerText.includes('Score on the current')"
        )
        page.wait_for_timeout(500)
        _shot(page, args.out / "classes.png", height=1440, top="[role=tablist]")
        page.click("#add-compound-btn")
        page.wait_for_function(
            "document.querySelector('#class-messages').innerText.includes('1 compounds')"
        )

        page.get_by_role("tab", name="Latent explorer").click()
        page.click("#explore-btn")
        page.wait_for_selector("#latent-plot .js-plotly-plot")
        click_plot_point(page, "#latent-plot")
        page.wait_for_selector("#neighbours [data-testid='cell-0-0']")
        page.wait_for_timeout(1000)
        _shot(page, args.out / "explorer.png", height=1350, top="#explore-method")

        page.get_by_role("tab", name="Live webcam").click()
        page.get_by_role("button", name="Click to Access Webcam").click()
        page.locator("#live-cam button[aria-label='capture photo']").click()
        page.wait_for_function(
            "/buffer ([4-9]|\\d\\d+)\\//.test(document.querySelector('#live-fps').innerText)"
        )
        page.wait_for_timeout(1500)
        _shot(page, args.out / "live.png", height=820, top="[role=tablist]")
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(url, wait_until="load")
        phone.wait_for_selector("#model-status")
        phone.wait_for_function(
            "document.querySelector('#model-status').innerText.includes('Model:')"
        )
        _shot(phone, args.out / "phone.png", height=844)
        browser.close()


def click_plot_point(page, plot: str) -> None:
    """Click the first drawn point of a clip trace of a plotly plot (as a person would)."""
    page.wait_for_selector(f"{plot} .js-plotly-plot .scatterlayer .points path")
    box = page.locator(f"{plot} .js-plotly-plot .scatterlayer .points path").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(200)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def _shot(page, path: Path, height: int, top: str | None = None) -> None:
    """Screenshot `height` pixels from the page top (or from element `top`), as a small PNG."""
    from PIL import Image

    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(300)
    if top is None:
        page.screenshot(path=str(path))
    else:
        y = max(0.0, page.locator(top).bounding_box()["y"] + page.evaluate("window.scrollY") - 16)
        page.screenshot(
            path=str(path), full_page=True, clip={"x": 0, "y": y, "width": width, "height": height}
        )
    image = Image.open(path).convert("RGB")
    for colours in (256, 128, 64):
        image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size < MAX_BYTES:
            break
    else:  # still too large: scale down
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        image.quantize(64).save(path, optimize=True)


def _generated_clip(folder: Path) -> Path:
    from emoclip.testing.media import moving_face_frames, write_video

    return write_video(folder / "face.webm", moving_face_frames(48, size=(360, 480)), fps=12)


def _webcam_file(folder: Path, source: Path | None) -> Path:
    """A 640x480 Y4M fake-webcam file: an example clip's frames if there is one, else a moving face."""
    import cv2
    import numpy as np

    frames: list[np.ndarray] = []
    if source is not None:
        cap = cv2.VideoCapture(str(source))
        while len(frames) < 60:
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[:2]
            scale = min(640 / w, 480 / h)
            small = cv2.resize(bgr, (max(2, int(w * scale)), max(2, int(h * scale))))
            canvas = np.full((480, 640, 3), 110, np.uint8)
            y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
            frames.append(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
        cap.release()
    if not frames:
        from emoclip.testing.media import moving_face_frames

        frames = [np.asarray(f) for f in moving_face_frames(30, size=(480, 640))]
    path = folder / "webcam.y4m"
    with open(path, "wb") as fh:
        fh.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for frame in frames + frames[::-1]:
            fh.write(
                b"FRAME\n"
                + cv2.cvtColor(
                    cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2YUV_I420
                ).tobytes()
            )
    return path


if __name__ == "__main__":
    raise SystemExit(main())
