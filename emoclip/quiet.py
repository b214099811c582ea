"""A quiet terminal: native libraries' log lines are silenced unless asked for.

MediaPipe (LiteRT/TFLite, XNNPACK, absl/glog) and OpenCV's FFmpeg write log lines such as
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` or ``W0000 ... inference_runner...``
straight to file descriptor 2 from C++, past Python's ``sys.stderr``. Two tools hide them:

* `silence_native_stderr` (whole processes: the ``emoclip`` command, ``python app.py``) keeps
  ``sys.stderr`` -- the project's messages and tqdm bars -- on the real terminal through a copy
  of descriptor 2, then points descriptor 2 itself at ``/dev/null``.
* `quiet_native_stderr` (a block inside a library call) points descriptor 2 at ``/dev/null``
  for the duration of the block only.

``EMOCLIP_LOG_LEVEL=debug`` (or ``emoclip predict --verbose``, ``python app.py --verbose``)
turns both into no-ops, so the native lines show again -- rerun so when a native library fails
without a Python exception, since its own message is silenced too. The switch is read by
`emoclip.settings.native_logs_enabled` (``--verbose`` sets it: `emoclip.settings.show_native_logs`);
this module only writes the native libraries' own quiet switches. Nothing happens at import.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator

from emoclip.settings import native_logs_enabled

__all__ = ["quiet_native_stderr", "silence_native_stderr"]

# Environment switches of the native libraries, where they exist (set only if unset).
_NATIVE_ENV = {
    "GLOG_minloglevel": "2",  # absl/glog: errors and fatals only
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow Lite (older wheels)
    "OPENCV_LOG_LEVEL": "ERROR",
    "OPENCV_FFMPEG_LOGLEVEL": "-8",  # AV_LOG_QUIET
}
# Python loggers of dependencies that chat at INFO/WARNING about nothing the user can act on.
_NOISY_LOGGERS = ("absl", "httpx", "urllib3")

_lock = threading.Lock()
_depth = 0  # nesting depth of quiet_native_stderr blocks (all threads)
_saved_fd: int | None = None  # descriptor 2 as it was before the outermost block
_silenced = False  # silence_native_stderr has run in this process


def _flush_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at ``/dev/null`` while the block runs; restore it afterwards.

    Thread-safe and nesting-safe: the outermost block (over all threads) redirects and the last
    one to leave restores. A no-op when `native_logs_enabled`. Python writes to ``sys.stderr``
    inside the block are lost too when ``sys.stderr`` writes to descriptor 2 (the default; not
    after `silence_native_stderr`), so keep the block tight around the native calls.
    """
    global _depth, _saved_fd
    if native_logs_enabled():
        yield
        return
    with _lock:
        if _depth == 0:
            _flush_stderr()
            _saved_fd = _redirect_to_devnull()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                _flush_stderr()
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


def _redirect_to_devnull() -> int | None:
    """Point descriptor 2 at /dev/null; return a copy of the old one (None: 2 is not open)."""
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon, pythonw): nothing to silence
        return None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
    except OSError:
        os.close(saved)
        return None
    return saved


def silence_native_stderr() -> bool:
    """Silence native log lines for the rest of the process; returns whether it did.

    ``sys.stderr`` is re-opened over a duplicate of descriptor 2 (same terminal or pipe, line
    buffered), so ``print(..., file=sys.stderr)`` and tqdm bars still show; then descriptor 2
    is pointed at ``/dev/null``, where C/C++ libraries' logs go. Also sets the libraries' own
    quiet switches (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL``, OpenCV's log levels) unless
    set already, and raises noisy Python loggers to WARNING/ERROR. Call it once, early, from a
    program's entry point -- never from library code. A no-op (returns False) when
    `native_logs_enabled`, or when it already ran.
    """
    global _silenced
    if native_logs_enabled() or _silenced:
        return False
    for key, value in _NATIVE_ENV.items():
        os.environ.setdefault(key, value)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if name == "absl" else logging.WARNING)
    _flush_stderr()
    with _lock:
        copy = _redirect_to_devnull()
        if copy is None:
            return False
        old = sys.stderr
        encoding = getattr(old, "encoding", None) or "utf-8"
        errors = getattr(old, "errors", None) or "backslashreplace"
        sys.stderr = io.TextIOWrapper(
            io.FileIO(copy, "w", closefd=True),
            encoding=encoding,
            errors=errors,
            line_buffering=True,
            write_through=True,
        )
        _silenced = True
    return True
