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
        ]
    )
    assert [line for line, _ in private_uses(code, private)] == [1, 3, 4, 5, 7]


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
