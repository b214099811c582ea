"""Closing a launched gradio demo in tests, robust to gradio's cross-thread shutdown race."""

from __future__ import annotations

from typing import Any


def close_demo(demo: Any) -> None:
    """`demo.close()`, once more if gradio's shutdown races with its own event loop.

    `Blocks.close` sets an `asyncio.Event` from the calling thread while the server's loop may
    still be adding waiters to it; CPython then raises "deque mutated during iteration" and
    the server is left running. The flag is set by then, so a second call skips the loop and
    stops the server.
    """
    try:
        demo.close()
    except RuntimeError as exc:
        if "mutated during iteration" not in str(exc):
            raise
        demo.close()
