"""`emoclip.quiet`: descriptor 2 silenced and restored, in fresh processes (pytest owns fd 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "EMOCLIP_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=60,
    )


BLOCKS = """
    import os, sys, threading
    from emoclip.quiet import quiet_native_stderr

    os.write(2, b"before\\n")
    with quiet_native_stderr():
        os.write(2, b"inside-outer\\n")
        with quiet_native_stderr():
            os.write(2, b"inside-inner\\n")
        os.write(2, b"between\\n")  # the inner block left: still silenced
        t = threading.Thread(target=lambda: os.write(2, b"thread-inside\\n"))
        t.start(); t.join()
    os.write(2, b"after\\n")
    print("python-after", file=sys.stderr)
"""


def test_quiet_native_stderr_silences_descriptor_2_and_restores_it():
    out = _run(BLOCKS)
    assert out.returncode == 0, out.stderr
    assert out.stderr.split() == ["before", "after", "python-after"]


@pytest.mark.parametrize("level", ["debug", "DEBUG"])
def test_quiet_native_stderr_is_a_no_op_at_debug_level(level):
    out = _run(BLOCKS, EMOCLIP_LOG_LEVEL=level)
    assert out.returncode == 0, out.stderr
    assert out.stderr.split() == [
        "before",
        "inside-outer",
        "inside-inner",
        "between",
        "thread-inside",
        "after",
        "python-after",
    ]


def test_quiet_native_stderr_restores_after_an_exception():
    out = _run("""
        import os
        from emoclip.quiet import quiet_native_stderr
        try:
            with quiet_native_stderr():
                os.write(2, b"hidden\\n")
                raise RuntimeError
        except RuntimeError:
            pass
        os.write(2, b"shown\\n")
    """)
    assert out.stderr.split() == ["shown"]


SILENCE = """
    import os, sys
    from emoclip.quiet import quiet_native_stderr, silence_native_stderr
    print("did", silence_native_stderr(), silence_native_stderr(), flush=True)
    os.write(2, b"native\\n")
    print("project line", file=sys.stderr)
    with quiet_native_stderr():
        print("inside block", file=sys.stderr)
    from tqdm import tqdm
    for _ in tqdm(range(3), file=sys.stderr, desc="bar", ascii=True):
        pass
    print(os.environ.get("GLOG_minloglevel"), flush=True)
"""


def test_silence_native_stderr_keeps_python_stderr_and_drops_native_writes():
    out = _run(SILENCE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["did", "True", "False", "2"]  # once; glog switch set
    assert "native" not in out.stderr
    assert "project line\n" in out.stderr and "inside block\n" in out.stderr
    assert "bar: 100%|" in out.stderr


def test_silence_native_stderr_is_a_no_op_at_debug_level():
    out = _run(SILENCE, EMOCLIP_LOG_LEVEL="debug")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["did", "False", "False", "None"]
    assert "native\n" in out.stderr and "project line\n" in out.stderr


DETECT = """
    from emoclip.testing.media import moving_face_frames
    from emoclip.faces import FaceDetector
    frames = moving_face_frames(2, size=(240, 320))
    with FaceDetector() as detector:
        boxes = [detector.detect(frame) for frame in frames]
    print(sum(len(b) for b in boxes))
"""
NATIVE_MARKERS = ("INFO:", "W0000", "I0000", "XNNPACK", "TensorFlow Lite", "LiteRT")


@pytest.mark.parametrize("level", ["", "debug"])
def test_face_detector_keeps_mediapipe_logs_off_the_terminal_unless_debug(level):
    out = _run(DETECT, EMOCLIP_LOG_LEVEL=level)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) >= 1  # the faces were found (the detector really ran)
    native = [line for line in out.stderr.splitlines() if any(m in line for m in NATIVE_MARKERS)]
    if level == "debug":
        assert native, out.stderr  # MediaPipe's LiteRT does log here: the switch lets it through
    else:
        assert native == [], out.stderr


def test_helpers_do_nothing_without_a_descriptor_2():
    out = _run("""
        import os
        os.close(2)
        from emoclip.quiet import quiet_native_stderr, silence_native_stderr
        with quiet_native_stderr():
            pass
        print("ok", silence_native_stderr())
    """)
    assert out.returncode == 0 and out.stdout.split() == ["ok", "False"], out.stdout
