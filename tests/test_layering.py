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
    mods = _modules_after("import emoclip.cli, emoclip.inference.predictor, emoclip.explore, emoclip.batch")
    assert "ray" not in mods


def test_library_never_imports_app_or_training_stacks():
    mods = _modules_after(
        "import emoclip, emoclip.inference.predictor, emoclip.factory, emoclip.cli, emoclip.convert, emoclip.faces"
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
                          "emoclip.classes, emoclip.inference.predictor")
    assert not {m for m in mods if m == "emoclip_app" or m.startswith(("emoclip_app.", "gradio"))}


def test_importing_the_app_does_no_model_work():
    mods = _modules_after("import emoclip_app")
    assert "emoclip_app.tabs.live" in mods and "gradio" in mods
    assert not {"torch", "open_clip", "cv2", "mediapipe"} & mods


def test_model_module_imports_no_weights_hub_or_disk_code():
    """`emoclip.model` is the architecture: building it pulls in no checkpoint reading, no
    pretrained-weight fetching, no Hub client and none of the inference fast paths."""
    mods = _modules_after("import emoclip.model")
    assert "emoclip.model" in mods and "torch" in mods  # the probe really imported the model
    forbidden = {"emoclip.weights", "emoclip.factory", "emoclip.convert", "emoclip.hub",
                 "huggingface_hub", "safetensors", "open_clip.pretrained"}
    forbidden |= {m for m in mods if m.startswith(("emoclip.inference", "emoclip.hub"))}
    assert not forbidden & mods, forbidden & mods


def test_pipeline_does_not_import_the_predictor():
    """Imports in `emoclip.inference` go one way: the predictor uses the pipeline, precision and
    photo path; none of them imports the predictor (not even for type checking)."""
    import pathlib

    import emoclip.inference

    root = pathlib.Path(emoclip.inference.__file__).parent
    for name in ("pipeline", "photo", "precision", "fast_paths", "memory", "inputs", "cache", "settings",
                 "prefetch"):
        text = (root / f"{name}.py").read_text(encoding="utf-8")
        assert "from .predictor" not in text and "emoclip.inference.predictor" not in text, name
    mods = _modules_after("import emoclip.inference.pipeline, emoclip.inference.photo, emoclip.inference.inputs, "
                          "emoclip.inference.cache, emoclip.inference.settings")
    assert "emoclip.inference.pipeline" in mods and "emoclip.inference.predictor" not in mods


def test_no_module_imports_another_modules_underscore_names():
    """Across `emoclip.inference` and the modules around it, names used by another module are public."""
    import ast
    import pathlib

    import emoclip

    root = pathlib.Path(emoclip.__file__).parent
    files = [*sorted((root / "inference").glob("*.py")),
             *(root / f"{m}.py" for m in ("model", "backbone", "weights", "factory", "convert", "cli"))]
    bad = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                bad += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad
