"""The registry owns model policy (issue #11 §3): kind, rank, description, how to get weights, and
the one start-up choice (`best_available`) that the CLI and the app share."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

import emoclip
from emoclip.cli import default_model_name
from emoclip.weights import registry
from emoclip.weights.registry import (
    MODEL_KINDS,
    ModelSource,
    best_available,
    get_spec,
    list_models,
    ranked_models,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _touch(folder: Path, *names: str) -> Path:
    """Weight files that `resolve` finds (it only checks that NAME.safetensors is a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.safetensors").write_bytes(b"")
    return folder


def test_every_spec_states_its_policy():
    specs = [get_spec(n) for n in list_models(include_test=True)]
    assert {s.kind for s in specs} == set(MODEL_KINDS)
    ranks = [s.rank for s in specs]
    assert len(set(ranks)) == len(ranks), "ranks must be unique: the start-up order is then total"
    for s in specs:
        assert s.kind in MODEL_KINDS and isinstance(s.rank, int)
        assert s.description.strip() and "\n" not in s.description
        assert s.how_to_get and all(isinstance(h, str) and h.strip() for h in s.how_to_get)
        assert (s.kind == "test") == s.random_init == (not s.listed), s.name
    # Test models always rank below every listed model.
    assert max(get_spec(n).rank for n in list_models()) < min(
        s.rank for s in specs if s.kind == "test"
    )


def test_paper_model_how_to_get_matches_its_sources():
    spec = get_spec("emoclip-vitb32")
    text = "\n".join(spec.how_to_get)
    assert spec.hub_repo is None  # no default Hub repo ...
    assert (
        "EMOCLIP_HUB_REPO" in text and "EMOCLIP_HUB_REVISION" in text and "publishes none" in text
    )
    assert "emoclip convert" in text and "EMOCLIP_WEIGHTS_DIR" in text
    tiny = "\n".join(get_spec("emoclip-synthetic-tiny").how_to_get)
    assert "weights/" in tiny and "EMOCLIP_TINY_HUB_REPO" in tiny


def test_missing_weights_error_lists_the_specs_how_to_get(tmp_path, no_network):
    with pytest.raises(registry.WeightsNotFoundError) as info:
        emoclip.load_model("emoclip-vitb32", weights_dirs=[tmp_path])
    for line in get_spec("emoclip-vitb32").how_to_get:
        assert f"  - {line}" in str(info.value)


def test_ranked_models_puts_paper_then_baseline_then_toy():
    assert [get_spec(n).kind for n in ranked_models()] == ["paper", "baseline", "toy"]
    with_test = ranked_models(include_test=True)
    assert with_test[:3] == ranked_models() and {get_spec(n).kind for n in with_test[3:]} == {
        "test"
    }


def test_best_available_picks_by_rank_without_network(tmp_path, no_network):
    cache = tmp_path / "hf"  # an empty Hub cache: the CLIP baseline is not available
    weights = tmp_path / "w"
    assert (
        best_available(weights_dirs=[weights], cache_dir=cache) == "emoclip-vitb32"
    )  # nothing: explain
    assert (
        best_available(weights_dirs=[weights], cache_dir=cache, include_test=True)
        == "test-emoclip-tiny"
    )
    _touch(weights, "emoclip-synthetic-tiny")
    assert best_available(weights_dirs=[weights], cache_dir=cache) == "emoclip-synthetic-tiny"
    _touch(weights, "clip-vitb32")
    assert best_available(weights_dirs=[weights], cache_dir=cache) == "clip-vitb32"
    _touch(weights, "emoclip-vitb32")
    assert (
        best_available(weights_dirs=[weights], cache_dir=cache, include_test=True)
        == "emoclip-vitb32"
    )


def test_best_available_from_given_sources_and_local_only():
    sources = {
        "emoclip-vitb32": ModelSource("emoclip-vitb32", True, "hub-download", "hf-hub:a/b", ""),
        "clip-vitb32": ModelSource("clip-vitb32", False, "missing", "", ""),
        "emoclip-synthetic-tiny": ModelSource("emoclip-synthetic-tiny", True, "local", "/w/t", ""),
    }
    assert best_available(sources=sources) == "emoclip-vitb32"
    assert best_available(sources=sources, local_only=True) == "emoclip-synthetic-tiny"


@pytest.mark.parametrize(
    "present",
    [
        (),
        ("emoclip-synthetic-tiny",),
        ("clip-vitb32", "emoclip-synthetic-tiny"),
        ("emoclip-vitb32", "emoclip-synthetic-tiny"),
    ],
)
def test_cli_and_app_start_with_the_same_model(present, tmp_path, monkeypatch, no_network):
    from emoclip_app.models import ModelManager

    weights = _touch(tmp_path / "w", *present)
    loaded: list[str] = []
    lock = threading.Lock()

    def fake_load(name, **_):
        with lock:
            loaded.append(name)
        return SimpleNamespace(config=SimpleNamespace(summary=name), source=name)

    monkeypatch.setattr(emoclip, "load_model", fake_load)
    cli = default_model_name([str(weights)])
    manager = ModelManager([weights])
    manager.start()
    assert manager.wait_idle(20)
    # Nothing available: the CLI names the paper's model (whose loading explains); the app loads none.
    assert loaded[:1] == ([cli] if present or cli != "emoclip-vitb32" else [])
    assert manager.default == (loaded[0] if loaded else None)


def test_no_module_decides_by_model_name_prefix():
    """Whether a model is a toy, a test model or the baseline is `ModelSpec.kind`, nowhere else."""
    pattern = re.compile(r"""startswith\(\s*\(?\s*["'](test-|emoclip-|clip-)""")
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if (
            rel.parts[0].startswith(".")
            or rel == Path("emoclip/weights/registry.py")  # where model policy lives
            or "site-packages" in rel.parts
        ):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "decide by get_spec(name).kind instead:\n" + "\n".join(offenders)
    assert (REPO / "emoclip/weights/registry.py").is_file()  # the one exempt module exists
