"""Dependency direction and import-time purity of the package."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_emoclip_is_cheap():
    mods = _modules_after("import emoclip")
    assert not {"torch", "open_clip", "cv2", "mediapipe"} & mods


def test_library_never_imports_app_or_training_stacks():
    mods = _modules_after(
        "import emoclip, emoclip.predictor, emoclip.factory, emoclip.cli, emoclip.convert, emoclip.faces"
    )
    forbidden = {"gradio", "plotly", "umap", "sklearn", "emoclip.train", "matplotlib"}
    assert not forbidden & mods, forbidden & mods


def test_public_api_resolves():
    import emoclip

    for name in emoclip.__all__:
        assert getattr(emoclip, name) is not None
