"""User text made safe for Markdown and plotly; package errors turned into gr.Error for API
callers and into warnings for the app's page (`no_dead_end`).

User text (class names, descriptions, file names) is always escaped before it reaches Markdown
or plotly, which both render a subset of HTML.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from .outputs import skipped

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md(text: Any) -> str:
    """`text` as literal text inside Markdown: HTML escaped, Markdown punctuation backslashed."""
    escaped = html.escape(str(text), quote=False).replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", escaped)


def code(text: Any) -> str:
    """`text` as a Markdown code span (rendered literally; backticks and line breaks removed)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def plot_text(text: Any) -> str:
    """`text` safe for plotly labels (plotly renders <b>, <a href>, <br> ... in strings)."""
    return html.escape(str(text), quote=True)


def error(
    exc: BaseException | str, path: str | None = None, *, validation: bool = False
) -> gr.Error:
    """A gr.Error showing the package's message as text (the modal renders HTML).

    `path` (a server-side upload path) is shortened to its file name in the message.
    `validation`: the input is missing or incomplete (nothing was tried; `no_dead_end` then
    marks no output), rather than the action failing.
    """
    message = str(exc)
    if path:
        message = message.replace(str(path), Path(path).name)
    err = gr.Error(html.escape(message, quote=False), print_exception=False)
    err.text = message  # the unescaped text, for `no_dead_end`
    err.validation = validation
    return err


def user_errors() -> tuple[type[BaseException], ...]:
    """The package's errors whose message is meant for the user."""
    from emoclip.classes import ClassSetError
    from emoclip.inference.encoding import NoFaceError
    from emoclip.media import VideoDecodeError
    from emoclip.media.probe import LimitError

    return (VideoDecodeError, LimitError, NoFaceError, ClassSetError)


def info(message: str) -> None:
    """A toast with `message` shown as text."""
    gr.Info(html.escape(message, quote=False))


def warning(message: str) -> None:
    """A warning toast with `message` shown as text."""
    gr.Warning(html.escape(message, quote=False))


def in_browser() -> bool:
    """Whether the running event came from the app's page: not from gradio_client (header
    ``x-gradio-user: api``), an MCP client, the ``/call/`` HTTP API or a direct Python call."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    if request is None:
        return False
    headers = getattr(request, "headers", None) or {}
    if headers.get("x-gradio-user") in ("api", "mcp"):
        return False
    return "/call/" not in str(getattr(request, "url", ""))


def no_dead_end(
    fn: Callable[..., Any], record: Any = None, mark: Callable[[str], dict] | None = None
) -> Callable[..., Any]:
    """`fn` for the app's page: a gr.Error it raises becomes a warning toast, and the event's
    outputs (the fields of `record`; None: one output) stay as they were, so no component
    enters gradio's error state (an "Error" overlay that hides it and blocks its inputs).
    `mark(text)` gives the values of outputs that show a failure of the whole action (not of a
    `validation` error) (the
    next success overwrites them). API callers (`in_browser()` False) still get the gr.Error:
    every door gives the same answer.
    """

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error as exc:
            if not in_browser():
                raise
            text = getattr(exc, "text", None) or html.unescape(str(exc.message))
            gr.Warning(html.escape(text, quote=False))
            if record is None:
                return gr.skip()
            failed = mark is not None and not getattr(exc, "validation", False)
            return skipped(record, **(mark(text) if failed and mark else {}))

    return handler
