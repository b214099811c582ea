"""The shape of the code base (issue #11): small modules, and no reaching into private names.

- Every module of the library, the app, the benchmarks and the scripts stays under the size bar
  (tests are exempt: one test file per public surface can be long).
- Tests, benchmarks and scripts use the project through its public names: no ``mod._name``,
  ``obj._name``, ``from m import _name``, ``getattr(mod, "_name")`` or ``monkeypatch.setattr(mod, "_name", ...)`` for a private
  name that the library or the app defines. What a test needs to see or replace gets a documented
  public seam instead, so that refactoring internals never silently breaks (or fakes) a test.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("emoclip", "emoclip_app")
MAX_MODULE_LINES = 500


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def test_no_module_over_the_size_bar():
    modules = [*_sources(*PACKAGES, "benchmarks", "scripts"), REPO / "app.py"]
    assert len(modules) > 50
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules
    }
    too_long = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert too_long == {}, f"split these by job (bar: {MAX_MODULE_LINES} lines): {too_long}"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def project_private_names() -> set[str]:
    """Every private name the library and the app define: functions, classes, module and class
    attributes, and attributes set on ``self``."""
    names: set[str] = set()
    for path in _sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if _is_private(n)}


def private_uses(source: str, private: set[str]) -> list[tuple[int, str]]:
    """(line, code) for each use of one of ``private`` from outside its module in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name in private]
            if any(_is_private(part) for part in (node.module or "").split(".")):
                found.append((node.lineno, f"from {node.module}"))  # a package's private module
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, f"import {a.name}")
                for a in node.names
                if a.name.split(".")[0] in PACKAGES and any(map(_is_private, a.name.split(".")))
            ]
        elif isinstance(node, ast.Attribute) and node.attr in private:
            owner = node.value
            own = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
            own |= isinstance(owner, ast.Call) and ast.unparse(owner.func) == "super"
            if not own:  # a class's own code may use its own private names
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
            ("setattr", "getattr", "delattr")
        ):
            for arg in node.args[:2]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if any(part in private for part in arg.value.split(".")):
                        found.append((node.lineno, ast.unparse(node)[:80]))
    return found


def test_the_private_name_check_sees_each_kind_of_reach():
    private = {"_secret", "_helper"}
    code = "\n".join(
        [
            "from emoclip.model.network import _helper",
            "import emoclip.model.network as m",
            "m._secret",
            "monkeypatch.setattr(m, '_secret', 1)",
            "monkeypatch.setattr('emoclip.model.network._helper', 1)",
            "self._secret; super()._helper(); os._exit(0); m.public",
            "getattr(m, '_secret')",
            "from emoclip._lazy import attach",
            "import emoclip.pkg._helpers",
        ]
    )
    assert sorted(line for line, _ in private_uses(code, private)) == [1, 3, 4, 5, 7, 8, 9]


def test_tests_benchmarks_and_scripts_use_only_public_names():
    private = project_private_names()
    assert {"_is_private"} - private  # the scan reads the packages, not this file
    assert len(private) > 100  # it does find the packages' private names
    reaches = {
        f"{path.relative_to(REPO)}:{line}": code
        for path in _sources("tests", "benchmarks", "scripts")
        if path.name != Path(__file__).name
        for line, code in private_uses(path.read_text(encoding="utf-8"), private)
    }
    assert reaches == {}, f"use or add a public seam instead: {reaches}"


# ---- no function over the length bar ----------------------------------------------------------

MAX_FUNCTION_LINES = 80


def function_lengths(source: str, module: str) -> dict[str, int]:
    """Qualified name -> lines of every function and method in ``source`` (``def`` line to last
    line, decorators excluded; nested functions count inside their parent and on their own)."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lengths[name] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, name)
            else:
                visit(child, prefix)

    visit(ast.parse(source), module)
    return lengths


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_length_check_counts_from_def_to_the_last_line():
    code = "@decorator\ndef f(x):\n    y = 1\n    return y\n\nclass C:\n    def m(self):\n        pass\n"
    assert function_lengths(code, "mod") == {"mod.f": 3, "mod.C.m": 2}


def test_no_function_over_the_length_bar():
    lengths = {
        name: n
        for path in _sources(*PACKAGES, "benchmarks", "scripts")
        for name, n in function_lengths(
            path.read_text(encoding="utf-8"), _module_name(path)
        ).items()
    }
    assert len(lengths) > 500  # the scan sees the code base's functions
    too_long = {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES}
    assert not too_long, f"split these by job (bar: {MAX_FUNCTION_LINES} lines): {too_long}"


# ---- one home per name --------------------------------------------------------------------------


def reexports(source: str, module: str) -> list[str]:
    """Names a module imports from another project module and passes on as its own: listed in its
    ``__all__``, imported as ``X as X``, or imported with ``# noqa: F401`` (kept although unused)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    declared: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value:
                declared |= {
                    e.value
                    for e in ast.walk(node.value)
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level:
            continue
        if (node.module or "").split(".")[0] not in PACKAGES or node.module == module:
            continue
        span = " ".join(lines[node.lineno - 1 : (node.end_lineno or node.lineno)])
        for alias in node.names:
            bound = alias.asname or alias.name
            if bound in declared or alias.asname == alias.name or "noqa: F401" in span:
                found.append(f"{node.module}.{alias.name}")
    return found


def test_the_reexport_check_sees_each_kind():
    code = "\n".join(
        [
            "from emoclip.a import listed, kept, renamed as renamed, plain",
            "from emoclip.b import unused  # noqa: F401",
            "from os import path as path",
            "__all__ = ['listed', 'mine']",
            "mine = plain",
        ]
    )
    assert reexports(code, "emoclip.c") == [
        "emoclip.a.listed",
        "emoclip.a.renamed",
        "emoclip.b.unused",
    ]


def test_only_a_package_init_reexports():
    """Issue #19 item 5: a package's ``__init__`` may re-export its public names; a module may not
    re-export another module's (no shims left by line-count splits: every name has one home)."""
    found = {
        str(path.relative_to(REPO)): names
        for path in _sources(*PACKAGES)
        if path.name != "__init__.py"
        for names in [reexports(path.read_text(encoding="utf-8"), _module_name(path))]
        if names
    }
    assert found == {}, f"import these from the module that defines them: {found}"
    # the modules that were re-export shims after line-count splits (issue #19 item 5) are scanned
    for module in ("weights/factory", "train/loading", "train/evaluate", "inference/predictor"):
        path = REPO / "emoclip" / f"{module}.py"
        assert path.is_file() and str(path.relative_to(REPO)) not in found, module
    assert (REPO / "emoclip/weights/convert.py").is_file() and not (
        REPO / "emoclip/video.py"
    ).exists()
