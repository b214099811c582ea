"""Dependency direction and import-time purity of the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "",
                              **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_emoclip_is_cheap():
    mods = _modules_after("import emoclip")
    assert not {"torch", "open_clip", "cv2", "mediapipe", "ray", "pyarrow"} & mods


def test_only_emoclip_batch_imports_ray():
    """Ray is the optional `scale` extra: the rest of the package never imports it (not even the
    CLI, which checks for it before `emoclip batch` runs), and `emoclip.batch` only when a run starts."""
    import pathlib

    import emoclip

    root = pathlib.Path(emoclip.__file__).parent
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if any(line.lstrip().startswith(("import ray", "from ray"))
                              for line in p.read_text(encoding="utf-8").splitlines()))
    assert importers and all(p.startswith("batch/") for p in importers), importers
    mods = _modules_after("import emoclip.cli, emoclip.predictor, emoclip.explore, emoclip.batch")
    assert "ray" not in mods


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


def test_library_never_imports_the_app_package():
    """`emoclip` is the library; `emoclip_app` (the Gradio app) sits on top of it, never under."""
    import pathlib

    import emoclip

    root = pathlib.Path(emoclip.__file__).parent
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if any(line.lstrip().startswith(("import emoclip_app", "from emoclip_app",
                                                        "import gradio", "from gradio"))
                              for line in p.read_text(encoding="utf-8").splitlines()))
    assert not importers, importers
    mods = _modules_after("import emoclip, emoclip.live, emoclip.zeroshot, emoclip.explore, "
                          "emoclip.classes, emoclip.predictor")
    assert not {m for m in mods if m == "emoclip_app" or m.startswith(("emoclip_app.", "gradio"))}


def test_importing_the_app_does_no_model_work():
    mods = _modules_after("import emoclip_app")
    assert "emoclip_app.tabs.live" in mods and "gradio" in mods
    assert not {"torch", "open_clip", "cv2", "mediapipe"} & mods
