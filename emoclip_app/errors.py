"""User text made safe for Markdown and plotly, and package errors turned into gr.Error.

User text (class names, descriptions, file names) is always escaped before it reaches Markdown
or plotly, which both render a subset of HTML.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import gradio as gr

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


def error(exc: BaseException | str, path: str | None = None) -> gr.Error:
    """A gr.Error showing the package's message as text (the modal renders HTML).

    `path` (a server-side upload path) is shortened to its file name in the message.
    """
    message = str(exc)
    if path:
        message = message.replace(str(path), Path(path).name)
    return gr.Error(html.escape(message, quote=False), print_exception=False)


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
