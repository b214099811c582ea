"""Checkpoint format, safe loading, and weight resolution (local, Hub cache, Hub download)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import socket
import time

import pytest
import torch
from hub_fixtures import COMMIT, fake_hub, fake_open_clip_tag, populate_cache

import emoclip
from emoclip import settings
from emoclip.settings import ModelLocations
from emoclip.weights import hub, registry
from emoclip.weights.files import CheckpointError, read_state_dict, save_checkpoint
from emoclip.weights.registry import ModelSpec, WeightsNotFoundError


def _save_tiny(model, path):
    return save_checkpoint(model.state_dict(), model.config, path)


def _same_outputs(a, b) -> bool:
    frames = torch.randn(1, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tokens = emoclip.tokenize(["a face with a wide smile"])
    with torch.inference_mode():
        return torch.allclose(
            a.encode_video(frames), b.encode_video(frames), atol=1e-6
        ) and torch.allclose(a.encode_text(tokens), b.encode_text(tokens), atol=1e-6)


def test_roundtrip_through_safetensors_and_sidecar(tiny_model, tmp_path):
    path = _save_tiny(tiny_model, tmp_path / "m.safetensors")
    side = path.with_suffix(".json")
    assert side.is_file() and "sha256" in side.read_text()
    loaded = emoclip.load_model(path)
    assert loaded.config == tiny_model.config
    assert _same_outputs(loaded, tiny_model)
    assert loaded.source == str(path)


def test_fp16_checkpoint_loads_as_fp32(tiny_model, tmp_path):
    path = save_checkpoint(
        tiny_model.state_dict(), tiny_model.config, tmp_path / "h.safetensors", dtype=torch.float16
    )
    loaded = emoclip.load_model(path)
    assert loaded.logit_scale.dtype == torch.float32
    assert torch.allclose(loaded.temporal.cls_token, tiny_model.temporal.cls_token, atol=1e-2)


def test_missing_sidecar_and_corrupt_file_are_refused(tiny_model, tmp_path):
    path = _save_tiny(tiny_model, tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        emoclip.load_model(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar"):
        emoclip.load_model(path)


def test_checkpoint_of_other_architecture_is_refused(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    state["temporal.cls_token"] = torch.zeros(1, 1, 7)
    path = save_checkpoint(state, tiny_model.config, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="shape"):
        emoclip.load_model(path)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_with_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"logit_scale": _Payload()}, fh)
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(evil)
    assert not (tmp_path / "PWNED").exists()


def test_plain_torch_checkpoint_is_read_safely(tmp_path):
    path = tmp_path / "ok.pth"
    torch.save({"state_dict": {"a": torch.ones(2)}}, path)
    assert torch.equal(read_state_dict(path)["a"], torch.ones(2))


@pytest.fixture
def hub_spec(monkeypatch):
    """Register a Hub-backed tiny model under the tiny test config."""
    spec = dataclasses.replace(
        registry.get_spec("test-emoclip-tiny"), hub_repo="someorg/emoclip-tiny", random_init=False
    )
    monkeypatch.setitem(registry.REGISTRY, "test-emoclip-tiny", spec)
    return spec


def test_resolution_order_local_dirs_before_hub_cache(tiny_model, tmp_path, hub_spec, monkeypatch):
    cache = tmp_path / "hf"
    hub_dir = tmp_path / "hubfiles"
    hub_dir.mkdir()
    _save_tiny(tiny_model, hub_dir / "test-emoclip-tiny.safetensors")
    populate_cache(
        cache,
        "someorg/emoclip-tiny",
        {
            "test-emoclip-tiny.safetensors": hub_dir / "test-emoclip-tiny.safetensors",
            "test-emoclip-tiny.json": hub_dir / "test-emoclip-tiny.json",
        },
    )
    src = registry.resolve("test-emoclip-tiny", cache_dir=cache)
    assert src.kind == "hub-cache" and src.available
    loaded = emoclip.load_model("test-emoclip-tiny", cache_dir=cache)
    assert "snapshots" in src.path and _same_outputs(loaded, tiny_model)
    assert (
        loaded.source.startswith("hf-hub:someorg/emoclip-tiny@main/")
        and "(unpinned)" in loaded.source
    )

    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    _save_tiny(tiny_model, env_dir / "test-emoclip-tiny.safetensors")
    where = ModelLocations(weights_dirs=(str(env_dir),))
    found = registry.resolve("test-emoclip-tiny", cache_dir=cache, locations=where)
    assert found.location.startswith(str(env_dir))
    monkeypatch.setenv("EMOCLIP_WEIGHTS_DIR", str(env_dir))  # the doors' way to the same value
    assert ModelLocations.from_env() == where
    assert registry.resolve("test-emoclip-tiny", cache_dir=cache).kind == "hub-cache"
    _save_tiny(tiny_model, arg_dir / "test-emoclip-tiny.safetensors")
    src = registry.resolve(
        "test-emoclip-tiny", weights_dirs=[arg_dir], cache_dir=cache, locations=where
    )
    assert src.kind == "local" and src.location.startswith(str(arg_dir))  # the call's first
    explicit = _save_tiny(tiny_model, tmp_path / "x" / "any.safetensors")
    assert registry.resolve(
        "test-emoclip-tiny", weights=explicit, weights_dirs=[arg_dir]
    ).location == str(explicit)
    named = where.replace(weights={"test-emoclip-tiny": str(explicit)})  # before every folder
    assert registry.resolve(
        "test-emoclip-tiny", weights_dirs=[arg_dir], locations=named
    ).location == str(explicit)
    other = _save_tiny(tiny_model, tmp_path / "y" / "other.safetensors")
    assert registry.resolve("test-emoclip-tiny", weights=other, locations=named).location == str(
        other
    )
    with pytest.raises(WeightsNotFoundError, match="not found"):
        registry.resolve("test-emoclip-tiny", weights=tmp_path / "nope.safetensors")


def test_nothing_available_lists_what_was_tried(tmp_path, hub_spec, monkeypatch):
    monkeypatch.setitem(
        registry.REGISTRY,
        "emoclip-vitb32",
        dataclasses.replace(registry.get_spec("emoclip-vitb32"), hub_repo="someorg/none"),
    )
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as err:
        emoclip.load_model("emoclip-vitb32", cache_dir=tmp_path / "empty")
    assert time.monotonic() - start < 3
    msg = str(err.value)
    assert "weights" in msg and "hf-hub:someorg/none" in msg and "emoclip convert" in msg


@pytest.fixture
def online(monkeypatch):
    """Pretend HF_HUB_OFFLINE is unset (the loopback fake hub is the only endpoint)."""
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    hub.reset_probe()
    yield
    hub.reset_probe()


def test_download_through_huggingface_hub_from_local_endpoint(
    tiny_model, tmp_path, hub_spec, online, monkeypatch
):
    import huggingface_hub.constants as c

    src_dir = tmp_path / "src"
    _save_tiny(tiny_model, src_dir / "test-emoclip-tiny.safetensors")
    files = {
        "someorg/emoclip-tiny": {
            n: src_dir / n for n in ("test-emoclip-tiny.safetensors", "test-emoclip-tiny.json")
        }
    }
    with fake_hub(files) as (url, requests):
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setattr(c, "ENDPOINT", url)
        monkeypatch.setattr(
            c, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        cache = tmp_path / "cache"
        assert registry.resolve("test-emoclip-tiny", cache_dir=cache).kind == "hub-download"
        loaded = emoclip.load_model("test-emoclip-tiny", cache_dir=cache)
        assert any("test-emoclip-tiny.safetensors" in r for r in requests)
    assert _same_outputs(loaded, tiny_model)
    # now cached: found with the Hub gone
    assert registry.resolve("test-emoclip-tiny", cache_dir=cache).kind == "hub-cache"


def test_unreachable_hub_is_decided_quickly(online, monkeypatch, tmp_path, hub_spec):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    listed = emoclip.available_models(cache_dir=tmp_path)
    assert time.monotonic() - start < 3
    assert {m.name for m in listed} >= {"emoclip-vitb32", "clip-vitb32", "emoclip-synthetic-tiny"}
    assert not hub.hub_online()
    assert "cannot reach" in hub.offline_reason()


def test_probe_uses_a_short_timeout(online, monkeypatch):
    seen = {}

    def fake_connect(address, timeout=None):
        seen["timeout"] = timeout
        raise TimeoutError

    monkeypatch.setattr(hub.socket, "create_connection", fake_connect)
    assert hub.hub_online() is False
    assert seen["timeout"] is not None and seen["timeout"] <= 2


def test_offline_env_skips_the_probe(monkeypatch):
    hub.reset_probe()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub.socket, "create_connection", lambda *a, **k: pytest.fail("probed"))
    assert hub.hub_online() is False and "HF_HUB_OFFLINE" in hub.offline_reason()


def test_clip_baseline_from_open_clip_pretrained_cache(tmp_path, monkeypatch):
    """A backbone-only model (the CLIP baseline path) loads open_clip weights from the Hub cache."""
    import dataclasses

    from safetensors.torch import save_file

    base = registry.get_spec("test-clip-tiny").config()
    cfg = base.replace(model=dataclasses.replace(base.model, backbone_pretrained="fake"))
    spec = dataclasses.replace(
        registry.get_spec("test-clip-tiny"), backbone_only=True, random_init=False
    )
    monkeypatch.setattr(ModelSpec, "config", lambda self: cfg)
    monkeypatch.setitem(registry.REGISTRY, "test-clip-tiny", spec)
    fake_open_clip_tag(monkeypatch, cfg.model.backbone, "fake", "someorg/tiny-clip/")
    cache = tmp_path / "hf"
    assert registry.resolve("test-clip-tiny", cache_dir=cache).available is False

    torch.manual_seed(3)
    donor = emoclip.EmoCLIP(cfg)
    with torch.no_grad():
        donor.backbone.logit_scale.fill_(4.6052)
    save_file(
        {k: v.contiguous() for k, v in donor.backbone.state_dict().items()},
        str(tmp_path / "w.safetensors"),
    )
    populate_cache(
        cache, "someorg/tiny-clip", {"open_clip_model.safetensors": tmp_path / "w.safetensors"}
    )
    src = registry.resolve("test-clip-tiny", cache_dir=cache)
    assert src.kind == "open_clip-cache" and src.location == "hf-hub:someorg/tiny-clip"
    model = emoclip.load_model("test-clip-tiny", cache_dir=cache)
    assert _same_outputs(model, donor.eval())
    assert abs(float(model.logit_scale.detach()) - 4.6052) < 1e-5  # CLIP's own temperature


# ---- weights from the Hub you can trust (issue #12 §4) ---------------------------------------------


def test_no_default_hub_repo_fails_fast_with_instructions(online, monkeypatch, tmp_path):
    spec = registry.get_spec("emoclip-vitb32")
    assert (
        spec.hub_repo is None and spec.repo() is None and spec.hub_label() is None
    )  # no namespace we do not own
    monkeypatch.setattr(
        hub, "hub_online", lambda *a, **k: pytest.fail("no repo: the network must not be asked")
    )
    monkeypatch.setattr(
        hub, "cached_file", lambda *a, **k: pytest.fail("no repo: no cache look-up either")
    )
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as err:
        emoclip.load_model("emoclip-vitb32", cache_dir=tmp_path)
    assert time.monotonic() - start < 1
    msg = str(err.value)
    assert (
        "EMOCLIP_HUB_REPO" in msg and "EMOCLIP_HUB_REVISION" in msg and "no repo configured" in msg
    )
    assert "./weights" in msg and "emoclip convert" in msg


@pytest.fixture
def env_hub(monkeypatch):
    """test-emoclip-tiny resolved from the Hub like emoclip-vitb32: by its repo and revision in
    `ModelLocations` only, which a door reads from EMOCLIP_HUB_REPO/REVISION (set here)."""
    spec = dataclasses.replace(registry.get_spec("test-emoclip-tiny"), random_init=False)
    monkeypatch.setitem(registry.REGISTRY, "test-emoclip-tiny", spec)
    names = {"hub_repo": "EMOCLIP_HUB_REPO", "hub_revision": "EMOCLIP_HUB_REVISION"}
    monkeypatch.setitem(settings.MODEL_VARIABLES, "test-emoclip-tiny", names)
    monkeypatch.setenv("EMOCLIP_HUB_REPO", "someorg/emoclip-tiny")
    return spec


def test_the_library_reads_no_location_from_the_environment(env_hub, tmp_path, monkeypatch):
    """The variables act only through `ModelLocations.from_env` (what the doors call)."""
    monkeypatch.setenv("EMOCLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("EMOCLIP_WEIGHTS", str(tmp_path / "w.safetensors"))
    assert registry.resolve("test-emoclip-tiny", probe_network=False).kind == "missing"
    assert env_hub.repo() is None and env_hub.revision() is None
    where = ModelLocations.from_env()
    assert env_hub.repo(where) == "someorg/emoclip-tiny" and str(tmp_path) in where.weights_dirs
    assert where.weights_file("emoclip-vitb32") == str(tmp_path / "w.safetensors")


@pytest.fixture
def served(online, monkeypatch, tmp_path):
    """Serve files from a loopback fake Hub: call it with {name: path}; yields the request log."""
    import huggingface_hub.constants as c

    def start(files):
        ctx = fake_hub({"someorg/emoclip-tiny": files})
        url, requests = ctx.__enter__()
        stack.append(ctx)
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setattr(c, "ENDPOINT", url)
        monkeypatch.setattr(
            c, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        return requests

    stack = []
    yield start
    for ctx in stack:
        ctx.__exit__(None, None, None)


def _hub_files(model, folder, **sidecar_changes):
    path = _save_tiny(model, folder / "test-emoclip-tiny.safetensors")
    side = path.with_suffix(".json")
    data = json.loads(side.read_text())
    for key, value in sidecar_changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    side.write_text(json.dumps(data))
    return {p.name: p for p in (path, side)}


def test_pinned_revision_is_downloaded_verified_and_shown(
    tiny_model, tmp_path, env_hub, served, monkeypatch
):
    """The value path: a script's `ModelLocations`, no environment."""
    monkeypatch.delenv("EMOCLIP_HUB_REPO")
    name = "test-emoclip-tiny"
    where = ModelLocations(hub_repos={name: "someorg/emoclip-tiny"}, hub_revisions={name: COMMIT})
    requests = served(_hub_files(tiny_model, tmp_path / "src"))
    cache = tmp_path / "cache"
    assert registry.resolve(name, cache_dir=cache).kind == "missing"  # no value, no Hub
    src = registry.resolve("test-emoclip-tiny", cache_dir=cache, locations=where)
    assert src.kind == "hub-download"
    assert src.location == f"hf-hub:someorg/emoclip-tiny@{COMMIT}/test-emoclip-tiny.safetensors"
    assert f"someorg/emoclip-tiny@{COMMIT}" in str(src)  # what `emoclip models` prints
    loaded = emoclip.load_model("test-emoclip-tiny", cache_dir=cache, locations=where)
    assert loaded.identity.revision == COMMIT  # what provenance records
    assert any(f"/resolve/{COMMIT}/test-emoclip-tiny.safetensors" in r for r in requests)
    assert not any("/resolve/main/" in r for r in requests)
    assert loaded.source == f"{src.location} (sha256 verified)" and _same_outputs(
        loaded, tiny_model
    )
    cached = registry.resolve(
        "test-emoclip-tiny", cache_dir=cache, locations=where
    )  # the pinned snapshot, now cached
    assert cached.kind == "hub-cache" and cached.location == src.location and COMMIT in cached.path


def test_missing_revision_is_shown_unpinned_with_a_warning(
    tiny_model, tmp_path, env_hub, served, caplog
):
    """The environment path: EMOCLIP_HUB_REPO without a revision, read by `from_env`."""
    served(_hub_files(tiny_model, tmp_path / "src"))
    where = ModelLocations.from_env()
    src = registry.resolve("test-emoclip-tiny", cache_dir=tmp_path / "cache", locations=where)
    assert env_hub.hub_label(where) == "someorg/emoclip-tiny@main (unpinned)"
    assert (
        src.location == "hf-hub:someorg/emoclip-tiny@main/test-emoclip-tiny.safetensors (unpinned)"
    )
    with caplog.at_level(logging.WARNING, logger="emoclip.weights.factory"):
        loaded = emoclip.load_model(
            "test-emoclip-tiny", cache_dir=tmp_path / "cache", locations=where
        )
    assert "(unpinned)" in loaded.source and loaded.identity.revision == "main"
    assert any(
        "not pinned to a commit" in r.message and "EMOCLIP_HUB_REVISION" in r.message
        for r in caplog.records
    )


def test_wrong_or_missing_hash_from_the_hub_is_refused(tiny_model, tmp_path, env_hub, served):
    served(_hub_files(tiny_model, tmp_path / "src", sha256="0" * 64))
    with pytest.raises(CheckpointError, match="sha256"):
        emoclip.load_model(
            "test-emoclip-tiny", cache_dir=tmp_path / "c1", locations=ModelLocations.from_env()
        )


def test_hub_sidecar_without_sha256_is_refused(tiny_model, tmp_path, env_hub, served):
    served(_hub_files(tiny_model, tmp_path / "src", sha256=None))
    with pytest.raises(CheckpointError, match="records no sha256"):
        emoclip.load_model(
            "test-emoclip-tiny", cache_dir=tmp_path / "c2", locations=ModelLocations.from_env()
        )
    # a local file of one's own may lack it (e.g. hand-written sidecar): verified when present only
    local = _hub_files(tiny_model, tmp_path / "own", sha256=None)["test-emoclip-tiny.safetensors"]
    assert _same_outputs(emoclip.load_model(local), tiny_model)


def _hostile(config: dict) -> dict:
    hostile = json.loads(json.dumps(config))
    hostile["model"]["backbone_config"]["vision_cfg"].update(
        width=8192, layers=128
    )  # ~100 G parameters
    hostile["model"]["backbone_config"]["text_cfg"].update(width=8192, layers=128)
    return hostile


def test_oversized_config_from_the_hub_is_refused_before_any_allocation(
    tiny_model, tmp_path, env_hub, served, monkeypatch
):
    files = _hub_files(tiny_model, tmp_path / "src")
    side = files["test-emoclip-tiny.json"]
    side.write_text(json.dumps(_hostile(json.loads(side.read_text()))))
    requests = served(files)
    built = []
    monkeypatch.setattr(
        emoclip.model.network,
        "create_backbone",
        lambda *a: built.append(a) or pytest.fail("allocated"),
    )
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="out of bounds.*G parameters"):
        emoclip.load_model(
            "test-emoclip-tiny", cache_dir=tmp_path / "cache", locations=ModelLocations.from_env()
        )
    assert time.monotonic() - start < 3 and not built
    assert not any(
        r.startswith("GET") and r.endswith(".safetensors") for r in requests
    )  # weights never fetched


def test_check_bounds_caps_fields_and_the_total(tiny_model, tmp_path):
    from emoclip.model.config import MAX_PARAMETERS, EmoCLIPConfig

    base = tiny_model.config.to_dict()
    assert 3e6 < EmoCLIPConfig.from_dict(base).check_bounds() < 4e6  # the tiny model: ~3.5 M
    paper = registry.get_spec("emoclip-vitb32").config().check_bounds()
    assert (
        abs(paper - 219_966_721) / 219_966_721 < 0.01
    )  # reference.md §7.1: 151,277,313 + 68,689,408
    with pytest.raises(ValueError, match="G parameters"):
        EmoCLIPConfig.from_dict(_hostile(base)).check_bounds()
    for section, key, value, match in [
        ("text_cfg", "context_length", 10**6, "context_length"),
        ("text_cfg", "vocab_size", 10**9, "vocab_size"),
        ("text_cfg", "heads", 0, "heads"),
        ("vision_cfg", "layers", "12", "integer"),
        ("vision_cfg", "width", 10**5, "width"),
        ("vision_cfg", "patch_size", 10**4, "patch_size"),
    ]:
        bad = json.loads(json.dumps(base))
        bad["model"]["backbone_config"][section][key] = value
        with pytest.raises(ValueError, match=match):
            EmoCLIPConfig.from_dict(bad).check_bounds()
    for key, value in (
        ("heads", 10**4),
        ("head_dim", 10**6),
        ("max_positions", 10**7),
        ("depth", 10**3),
    ):
        bad = json.loads(json.dumps(base))
        bad["model"]["temporal"][key] = value
        with pytest.raises(ValueError, match=key):
            EmoCLIPConfig.from_dict(bad).check_bounds()
    bad = json.loads(json.dumps(base))
    bad["preprocess"]["num_frames"] = 10**5
    with pytest.raises(ValueError, match="num_frames"):
        emoclip.EmoCLIP(EmoCLIPConfig.from_dict(bad))  # the model checks before it allocates
    # a local file with a hostile sidecar: refused as a checkpoint error, nothing built
    path = _save_tiny(tiny_model, tmp_path / "m.safetensors")
    path.with_suffix(".json").write_text(
        json.dumps(_hostile(json.loads(path.with_suffix(".json").read_text())))
    )
    with pytest.raises(CheckpointError, match="out of bounds"):
        emoclip.load_model(path)
    path.with_suffix(".json").write_text(" " * (5 << 20) + "{}")  # a 5 MB sidecar is not read
    with pytest.raises(CheckpointError, match="at most"):
        emoclip.load_model(path)
    assert MAX_PARAMETERS <= 4e9


def test_models_command_shows_repo_at_revision(monkeypatch, capsys):
    from emoclip import cli

    monkeypatch.setenv("EMOCLIP_HUB_REPO", "someorg/emoclip")
    monkeypatch.setenv("EMOCLIP_HUB_REVISION", COMMIT)
    assert cli.main(["models"]) == 0
    assert f"hf-hub:someorg/emoclip@{COMMIT}/emoclip-vitb32.safetensors" in capsys.readouterr().out
    monkeypatch.delenv("EMOCLIP_HUB_REVISION")
    assert cli.main(["models"]) == 0
    assert "someorg/emoclip@main/emoclip-vitb32.safetensors (unpinned)" in capsys.readouterr().out
    monkeypatch.setenv("EMOCLIP_HUB_REPO", "not a repo")
    assert cli.main(["models"]) == 0
    assert "not a Hub repo id" in capsys.readouterr().out
