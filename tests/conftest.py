"""Shared fixtures. The environment is made offline before anything imports huggingface_hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's own weights folders, env overrides or Hub cache."""
    for var in (
        "EMOCLIP_WEIGHTS",
        "EMOCLIP_WEIGHTS_DIR",
        "EMOCLIP_HUB_REPO",
        "EMOCLIP_HUB_REVISION",
        "EMOCLIP_TINY_HUB_REPO",
        "EMOCLIP_TINY_HUB_REVISION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def tiny_model():
    """Random-weight EmoCLIP of the real architecture at tiny size (no download)."""
    import emoclip

    torch.manual_seed(0)
    return emoclip.load_model("test-emoclip-tiny")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def _tower_choices_in_a_session_folder(tmp_path_factory):
    """Image-tower choices (`emoclip.inference.autotune`) are kept in a folder of this test session,
    never in ~/.cache: a machine's earlier runs cannot change what a test sees."""
    from emoclip.inference import tower_cache

    folder = tmp_path_factory.mktemp("tower-choices")
    real = tower_cache.default_cache_dir
    tower_cache.default_cache_dir = lambda: folder
    yield folder
    tower_cache.default_cache_dir = real
