"""Dependency direction and import-time purity of the package."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={
            "HF_HUB_OFFLINE": "1",
            "PATH": "",
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
    )
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
    importers = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(
            line.lstrip().startswith(("import ray", "from ray"))
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    )
    assert importers and all(p.startswith("batch/") for p in importers), importers
    mods = _modules_after(
        "import emoclip.cli, emoclip.inference.predictor, emoclip.explore, emoclip.batch"
    )
    assert "ray" not in mods


def test_library_never_imports_app_or_training_stacks():
    mods = _modules_after(
        "import emoclip, emoclip.inference.predictor, emoclip.weights.factory, emoclip.cli, emoclip.weights.convert, emoclip.faces"
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
    importers = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(
            line.lstrip().startswith(
                ("import emoclip_app", "from emoclip_app", "import gradio", "from gradio")
            )
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    )
    assert not importers, importers
    mods = _modules_after(
        "import emoclip, emoclip.live, emoclip.zeroshot, emoclip.explore, "
        "emoclip.classes, emoclip.inference.predictor"
    )
    assert not {m for m in mods if m == "emoclip_app" or m.startswith(("emoclip_app.", "gradio"))}


def test_importing_the_app_does_no_model_work():
    mods = _modules_after("import emoclip_app")
    assert "emoclip_app.tabs.live" in mods and "gradio" in mods
    assert not {"torch", "open_clip", "cv2", "mediapipe"} & mods


def test_model_module_imports_no_weights_hub_or_disk_code():
    """`emoclip.model.network` is the architecture: building it pulls in no checkpoint reading, no
    pretrained-weight fetching, no Hub client and none of the inference fast paths."""
    mods = _modules_after("import emoclip.model.network")
    assert (
        "emoclip.model.network" in mods and "torch" in mods
    )  # the probe really imported the model
    forbidden = {
        "emoclip.weights.files",
        "emoclip.weights.factory",
        "emoclip.weights.convert",
        "emoclip.weights.hub",
        "huggingface_hub",
        "safetensors",
        "open_clip.pretrained",
    }
    forbidden |= {m for m in mods if m.startswith(("emoclip.inference", "emoclip.weights"))}
    assert not forbidden & mods, forbidden & mods


def test_pipeline_does_not_import_the_predictor():
    """Imports in `emoclip.inference` go one way: the predictor uses the pipeline, precision and
    photo path; none of them imports the predictor (not even for type checking)."""
    import pathlib

    import emoclip.inference

    root = pathlib.Path(emoclip.inference.__file__).parent
    for name in (
        "pipeline",
        "photo",
        "precision",
        "fast_paths",
        "memory",
        "../media/inputs",  # the input layer, moved to emoclip.media
        "cache",
        "settings",
        "prefetch",
        "encoding",
        "detector",
        "parallel",
        "scoring",
        "timeline",
        "tracks",
    ):
        text = (root / f"{name}.py").read_text(encoding="utf-8")
        assert "from .predictor" not in text and "emoclip.inference.predictor" not in text, name
    mods = _modules_after(
        "import emoclip.inference.pipeline, emoclip.inference.photo, emoclip.media.inputs, "
        "emoclip.inference.cache, emoclip.inference.settings, emoclip.inference.precision, "
        "emoclip.inference.scoring, emoclip.inference.detector"
    )
    assert "emoclip.inference.pipeline" in mods and "emoclip.inference.predictor" not in mods


# --------------------------------------------------------------------------------------------
# The import graph of the package, read from the source with ast (every import: module level,
# inside functions, under TYPE_CHECKING).
# --------------------------------------------------------------------------------------------


def _package_modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every module of the library
    (`emoclip`) and of the app (`emoclip_app`)."""
    import emoclip
    import emoclip_app

    modules = {}
    for package in (emoclip, emoclip_app):
        root = Path(package.__file__).parent
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imports(modules: dict[str, tuple[Path, bool]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(importer, imported module, names) for every import of one package module by another;
    ``from package import submodule`` counts as an import of the submodule only."""
    found = []
    for name, (path, is_package) in modules.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(name, a.name, ()) for a in node.names if a.name in modules]
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                found += [(name, sub, ()) for sub in subs]
                if len(subs) < len(node.names) and target in modules:
                    found.append((name, target, tuple(a.name for a in node.names)))
    return [(a, b, names) for a, b, names in found if a != b]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


# Known exceptions (none since the inference subpackage made its imports one-way).
_KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def test_no_import_cycles():
    modules = _package_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for importer, imported, _ in _imports(modules):
        if (importer, imported) not in _KNOWN_CYCLE_EDGES:
            graph[importer].add(imported)
    assert _cycles(graph) == []
    # the check itself sees a circle: one more edge back closes one
    graph["emoclip.model.config"].add("emoclip.model.network")
    assert any({"emoclip.model.network", "emoclip.model.config"} <= set(c) for c in _cycles(graph))


# Known exceptions (none since the inference subpackage made its names public).
_KNOWN_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


def _is_private_part(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _own_private_module(importer: str, imported: str) -> bool:
    """True when ``imported`` is a private helper module (``pkg/_name.py``, timm's convention) of a
    package that ``importer`` belongs to: internals shared inside their own package."""
    package, _, leaf = imported.rpartition(".")
    return _is_private_part(leaf) and (importer + ".").startswith(package + ".")


def private_import_violations(
    imports: list[tuple[str, str, tuple[str, ...]]],
) -> set[tuple[str, str, str]]:
    """(importer, imported, name) for each private name or private module used from outside its home:
    a private name from another module, unless that module is a private helper module of the
    importer's own package; a private module from outside its package."""
    found = set()
    for importer, imported, names in imports:
        own = _own_private_module(importer, imported)
        found |= {(importer, imported, n) for n in names if _is_private_part(n) and not own}
        parts = imported.split(".")
        for i, part in enumerate(parts[1:], start=1):
            package = ".".join(parts[:i])
            if _is_private_part(part) and not (importer + ".").startswith(package + "."):
                found.add((importer, imported, ""))
    return found


def test_the_private_import_check_allows_a_packages_own_private_modules():
    imports = [
        ("emoclip.pkg.a", "emoclip.pkg._helpers", ("_shared",)),  # own package: fine
        ("emoclip.pkg.sub.b", "emoclip.pkg._helpers", ("public",)),  # inside the package: fine
        ("emoclip.media", "emoclip._lazy", ("attach",)),  # emoclip's own helper: fine
        ("emoclip.pkg.a", "emoclip.pkg.b", ("_private",)),  # another module's private name
        ("emoclip.other", "emoclip.pkg._helpers", ("public",)),  # another package's internals
        ("emoclip_app.x", "emoclip._lazy", ()),  # the app reaching into the library's internals
    ]
    assert private_import_violations(imports) == {
        ("emoclip.pkg.a", "emoclip.pkg.b", "_private"),
        ("emoclip.other", "emoclip.pkg._helpers", ""),
        ("emoclip_app.x", "emoclip._lazy", ""),
    }


def test_no_module_imports_another_modules_private_names():
    """No module imports another's private names, except from a private helper module of its own
    package (issue #19 item 5), and no module imports another package's private modules."""
    private = private_import_violations(_imports(_package_modules()))
    assert private - _KNOWN_PRIVATE_IMPORTS == set()
    # the check covers the app as well as the library
    assert any(m.startswith("emoclip_app.tabs.") for m in _package_modules())
