"""Headless Chromium for driving the app as a browser does: the browser tests, the live
benchmark (P6e) and the screenshot script launch it with these flags (Playwright's own browser
downloads are not used: Debian's ``chromium`` package is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "launch_chromium"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no network beyond the app's own server
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",  # the camera is allowed without a prompt
    "--use-fake-device-for-media-stream",
)


def launch_chromium(
    playwright: Any, camera: str | Path | None = None, executable: str | Path = CHROMIUM
) -> Any:
    """A headless Chromium browser from a started Playwright (``sync_playwright().start()``);
    `camera`: a y4m/mjpeg file the fake webcam plays (looped)."""
    args = list(CHROMIUM_FLAGS)
    if camera is not None:
        args.append(f"--use-file-for-fake-video-capture={camera}")
    return playwright.chromium.launch(executable_path=str(executable), headless=True, args=args)
