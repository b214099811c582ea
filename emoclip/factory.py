"""The model registry: named models, where their weights come from, and `load_model`.

Resolution order for a named model (first hit wins):

1. an explicit ``weights=`` file (for ``emoclip-vitb32`` also ``EMOCLIP_WEIGHTS``);
2. ``NAME.safetensors`` in ``weights_dirs``, ``EMOCLIP_WEIGHTS_DIR`` and ``./weights``;
3. the model's Hugging Face Hub repo, only when one is configured: ``EMOCLIP_HUB_REPO`` (and
   ``EMOCLIP_HUB_REVISION``, a commit hash, recommended) for ``emoclip-vitb32``. This project
   publishes no EmoCLIP weights yet, so there is **no default repo**: a name in a namespace the
   project does not own could serve any weights. Cache first, then a download when the Hub is
   reachable; the sidecar is downloaded first and its architecture checked against
   `EmoCLIPConfig.check_bounds`, then the weights, whose sha256 must match the sidecar's;
4. for backbone-only models (the CLIP baseline), open_clip's pretrained weights;
5. for test models (``kind == "test"``), random initialisation.

The registry also owns model policy: each `ModelSpec` carries its ``kind`` (paper / baseline /
toy / test), its start-up ``rank``, a one-line ``description`` and ``how_to_get`` its weights;
`best_available` is the one start-up choice the CLI and the app share.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .model import EmoCLIP
from .model_config import EmoCLIPConfig, packaged_config_dir
from .weights import (
    CheckpointError,
    load_checkpoint,
    pretrained_backbone_state,
    pretrained_location,
)

log = logging.getLogger(__name__)
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")

ModelKind = Literal["paper", "baseline", "toy", "test"]
MODEL_KINDS: tuple[str, ...] = ("paper", "baseline", "toy", "test")


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its packaged config, its weight sources and its policy.

    ``kind`` says what the model is for people (``paper``: the paper's EmoCLIP; ``baseline``: plain
    CLIP; ``toy``: trained on synthetic cartoon faces, says nothing about real faces; ``test``:
    random weights). It is not `ModelSource.kind`, which says where weights come from.
    ``rank``: start-up preference, lower first (`best_available`). ``how_to_get``: one line per
    way to obtain the weights, shown when none are found.
    """

    name: str
    kind: ModelKind
    rank: int
    description: str
    how_to_get: tuple[str, ...]
    hub_repo: str | None = (
        None  # Hub repo holding NAME.safetensors + NAME.json (None: only the env var)
    )
    hub_repo_env: str | None = None  # environment variable that overrides hub_repo
    hub_revision: str | None = None  # commit hash pinning hub_repo (None: "main", unpinned)
    hub_revision_env: str | None = None  # environment variable that overrides hub_revision
    backbone_only: bool = False  # complete with open_clip pretrained backbone weights alone
    random_init: bool = False  # a test model: random weights are acceptable
    listed: bool = True  # shown by available_models()

    def repo(self) -> str | None:
        """The Hub repo in force (environment override included).

        Raises:
            ValueError: the repo is not of the form ``owner/name``.
        """
        repo = (
            (os.environ.get(self.hub_repo_env) or "").strip() if self.hub_repo_env else ""
        ) or self.hub_repo
        if repo and not _REPO_ID.fullmatch(repo):
            raise ValueError(
                f"{self.hub_repo_env or 'hub_repo'}={repo!r} is not a Hub repo id (owner/name)"
            )
        return repo or None

    def revision(self) -> str | None:
        """The Hub revision in force (environment override included); None means "main"."""
        env = (os.environ.get(self.hub_revision_env) or "").strip() if self.hub_revision_env else ""
        return env or self.hub_revision

    def hub_label(self) -> str | None:
        """``repo@revision`` as shown to users: ``owner/name@<commit>``, or with
        ``(unpinned)`` when the revision is a branch or tag (or missing, i.e. ``main``)."""
        repo = self.repo()
        if not repo:
            return None
        revision = self.revision()
        if revision and _COMMIT.fullmatch(revision):
            return f"{repo}@{revision}"
        return f"{repo}@{revision or 'main'} (unpinned)"

    def config(self) -> EmoCLIPConfig:
        """The packaged architecture/preprocessing config."""
        return EmoCLIPConfig.load(packaged_config_dir() / f"{self.name}.json")


# The model registry, name -> spec (tests register specs here with monkeypatch.setitem).
REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # No default repo until this project publishes its own (issue #12 §4).
        ModelSpec(
            "emoclip-vitb32",
            "paper",
            0,
            "The paper's EmoCLIP (ViT-B/32 CLIP + temporal transformer) for real faces.",
            (
                "convert the authors' released checkpoint: emoclip convert AUTHORS.pth weights/emoclip-vitb32.safetensors",
                "or train one: python -m emoclip.train --config <config.yaml> (see README, Training)",
                "or put emoclip-vitb32.safetensors + .json in ./weights (or EMOCLIP_WEIGHTS_DIR, or EMOCLIP_WEIGHTS=FILE)",
                "or, from a Hugging Face repo you trust: EMOCLIP_HUB_REPO=owner/name EMOCLIP_HUB_REVISION=<commit hash>"
                " (this project publishes none yet; the Hub must be reachable: unset HF_HUB_OFFLINE)",
            ),
            hub_repo_env="EMOCLIP_HUB_REPO",
            hub_revision_env="EMOCLIP_HUB_REVISION",
        ),
        ModelSpec(
            "clip-vitb32",
            "baseline",
            10,
            "Plain CLIP ViT-B/32, frames averaged: the zero-shot baseline (no emotion training).",
            (
                "connect to the Hugging Face Hub once (open_clip's pretrained weights are then cached)",
                "or put clip-vitb32.safetensors + .json in ./weights (or EMOCLIP_WEIGHTS_DIR)",
            ),
            backbone_only=True,
        ),
        ModelSpec(
            "emoclip-synthetic-tiny",
            "toy",
            20,
            "A tiny EmoCLIP trained on synthetic cartoon faces: shows the mechanism, not real faces.",
            (
                "it ships in the repository's weights/ folder; run from the repository root or pass --weights-dir",
                "or put emoclip-synthetic-tiny.safetensors + .json in EMOCLIP_WEIGHTS_DIR",
                "or, from a Hugging Face repo you trust: EMOCLIP_TINY_HUB_REPO=owner/name"
                " EMOCLIP_TINY_HUB_REVISION=<commit hash>",
            ),
            hub_repo_env="EMOCLIP_TINY_HUB_REPO",
            hub_revision_env="EMOCLIP_TINY_HUB_REVISION",
        ),
        ModelSpec(
            "test-emoclip-tiny",
            "test",
            100,
            "Tiny EmoCLIP with random weights, for tests.",
            ("none needed: random initialisation",),
            random_init=True,
            listed=False,
        ),
        ModelSpec(
            "test-clip-tiny",
            "test",
            101,
            "Tiny CLIP baseline with random weights, for tests.",
            ("none needed: random initialisation",),
            random_init=True,
            listed=False,
        ),
        ModelSpec(
            "test-emoclip-vitb32",
            "test",
            102,
            "EmoCLIP at the paper's sizes with random weights, for tests.",
            ("none needed: random initialisation",),
            random_init=True,
            listed=False,
        ),
    )
}


class WeightsNotFoundError(FileNotFoundError):
    """No source could provide a model's weights; the message lists what was tried."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights would come from.

    Attributes:
        name: Registry name.
        available: Whether `load_model` would succeed without further action (downloads count
            when the Hub is reachable).
        kind: ``local`` | ``hub-cache`` | ``hub-download`` | ``open_clip-cache`` |
            ``open_clip-download`` | ``random`` | ``missing``.
        location: A path, or for the Hub ``hf-hub:owner/name@revision/file`` (with
            `` (unpinned)`` when the revision is not a commit hash).
        summary: What the model is and is good for.
        tried: Every source looked at, with why it failed.
        path: The local file (kinds ``local`` and ``hub-cache``), else "".
    """

    name: str
    available: bool
    kind: str
    location: str
    summary: str
    tried: tuple[str, ...] = ()
    path: str = ""

    def __str__(self) -> str:
        state = "available" if self.available else "not available"
        return f"{self.name:<24} {state:<14} {self.kind:<18} {self.location}"


def list_models(include_test: bool = False) -> list[str]:
    """Registered model names."""
    return [n for n, s in REGISTRY.items() if s.listed or include_test]


def ranked_models(include_test: bool = False) -> list[str]:
    """Registered model names, best first (by `ModelSpec.rank`); test models only with `include_test`."""
    return sorted(list_models(include_test), key=lambda n: (REGISTRY[n].rank, n))


def best_available(
    *,
    include_test: bool = False,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
    probe_network: bool = True,
    local_only: bool = False,
    sources: Mapping[str, ModelSource] | None = None,
) -> str:
    """The start-up model: the best-ranked model whose weights are available.

    The one preference the CLI and the app share. Nothing is loaded or downloaded; `resolve`
    probes the Hub once (skip with ``probe_network=False``), so a model that needs a download
    counts as available when the Hub is reachable, unless `local_only`.

    Args:
        include_test: Also consider the random-weight test models (ranked last).
        weights_dirs: Extra folders searched for ``NAME.safetensors``.
        cache_dir: Hugging Face cache folder.
        probe_network: Let `resolve` probe the Hub.
        local_only: Skip sources that need a download (``*-download``).
        sources: Already resolved sources by name (e.g. the app's); names missing from it are
            skipped instead of resolved.

    Returns:
        A registry name; when nothing is available, the best-ranked model, whose `load_model`
        then explains what was tried and how to get weights.
    """
    names = ranked_models(include_test)
    for name in names:
        if sources is not None:
            source = sources.get(name)
        else:
            source = resolve(
                name, weights_dirs=weights_dirs, cache_dir=cache_dir, probe_network=probe_network
            )
        if source is None or not source.available:
            continue
        if local_only and source.kind.endswith("download"):
            continue
        return name
    return names[0]


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models(True))}") from None


def _weights_dirs(extra: Sequence[str | Path]) -> list[Path]:
    dirs = [Path(d) for d in extra]
    if os.environ.get("EMOCLIP_WEIGHTS_DIR"):
        dirs += [Path(p) for p in os.environ["EMOCLIP_WEIGHTS_DIR"].split(os.pathsep) if p]
    dirs.append(Path.cwd() / "weights")
    return list(dict.fromkeys(dirs))


def resolve(
    name: str,
    *,
    weights: str | Path | None = None,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
    probe_network: bool = True,
) -> ModelSource:
    """Find where `name`'s weights would come from, without loading or downloading them.

    Takes at most a couple of seconds with no network (one short TCP probe of the Hub).
    """
    from . import hub_download

    spec = get_spec(name)
    summary = spec.config().summary
    tried: list[str] = []
    explicit = weights or (os.environ.get("EMOCLIP_WEIGHTS") if name == "emoclip-vitb32" else None)
    if explicit:
        path = Path(explicit)
        if path.is_file():
            return ModelSource(name, True, "local", str(path), summary, path=str(path))
        raise WeightsNotFoundError(f"weights file for {name} not found: {path}")
    for folder in _weights_dirs(weights_dirs):
        path = folder / f"{name}.safetensors"
        if path.is_file():
            return ModelSource(
                name, True, "local", str(path), summary, tuple(tried), path=str(path)
            )
        tried.append(f"local file {path}: missing")
    try:
        repo = spec.repo()
    except ValueError as exc:
        repo = None
        tried.append(f"Hugging Face Hub: {exc}")
    if repo:
        revision = spec.revision()
        location = hub_location(spec)
        found = hub_download.cached_file(
            repo, f"{name}.safetensors", revision=revision, cache_dir=cache_dir
        )
        if found is not None and hub_download.cached_file(
            repo, f"{name}.json", revision=revision, cache_dir=cache_dir
        ):
            return ModelSource(
                name, True, "hub-cache", location, summary, tuple(tried), path=str(found)
            )
        if probe_network and hub_download.hub_online():
            return ModelSource(name, True, "hub-download", location, summary, tuple(tried))
        tried.append(f"{location}: not cached, Hub unreachable ({hub_download.offline_reason()})")
    elif spec.hub_repo_env and spec.kind == "paper":
        tried.append(
            f"Hugging Face Hub: no repo configured (this project publishes none yet); set "
            f"{spec.hub_repo_env}=owner/name and {spec.hub_revision_env}=<commit hash>"
        )
    if spec.backbone_only:
        model_cfg = spec.config().model
        location = pretrained_location(model_cfg) or "open_clip"
        from open_clip import pretrained as oc_pretrained

        pcfg = oc_pretrained.get_pretrained_cfg(
            model_cfg.backbone, model_cfg.backbone_pretrained or ""
        )
        if pcfg and hub_download.cached_open_clip_file(pcfg, cache_dir=cache_dir) is not None:
            return ModelSource(name, True, "open_clip-cache", location, summary, tuple(tried))
        if probe_network and hub_download.hub_online():
            return ModelSource(name, True, "open_clip-download", location, summary, tuple(tried))
        tried.append(
            f"open_clip pretrained {location}: not cached, Hub unreachable ({hub_download.offline_reason()})"
        )
    if spec.random_init:
        return ModelSource(
            name, True, "random", "random initialisation (test model)", summary, tuple(tried)
        )
    return ModelSource(name, False, "missing", "", summary, tuple(tried))


def hub_location(spec: ModelSpec) -> str:
    """``hf-hub:owner/name@revision/NAME.safetensors`` (`` (unpinned)`` without a commit hash)."""
    label = spec.hub_label() or ""
    repo_rev, _, note = label.partition(" ")
    return f"hf-hub:{repo_rev}/{spec.name}.safetensors" + (f" {note}" if note else "")


def available_models(
    *, weights_dirs: Sequence[str | Path] = (), cache_dir: str | Path | None = None
) -> list[ModelSource]:
    """Every listed model and where its weights would come from (no loading, no download)."""
    return [resolve(n, weights_dirs=weights_dirs, cache_dir=cache_dir) for n in list_models()]


def load_model(
    name_or_path: str | Path = "emoclip-vitb32",
    *,
    device: str | torch.device = "cpu",
    weights: str | Path | None = None,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
) -> EmoCLIP:
    """Load a model by registry name or from a ``.safetensors`` file with its JSON sidecar.

    Args:
        name_or_path: Registry name (see `available_models`) or a weights file path.
        device: Where to put the model.
        weights: Explicit weights file for a registry name.
        weights_dirs: Extra folders searched for ``NAME.safetensors``.
        cache_dir: Hugging Face cache folder (default: huggingface_hub's).

    Returns:
        The model in eval mode, with ``model.source`` saying where the weights came from.

    Raises:
        WeightsNotFoundError: no source could provide the weights (the message lists them all).
        CheckpointError: a file was found but is corrupt, unsafe or does not fit its config.
    """
    text = str(name_or_path)
    if text.endswith((".safetensors", ".json")) or os.sep in text or Path(text).is_file():
        path = Path(text).with_suffix(".safetensors")
        if not path.is_file():
            raise WeightsNotFoundError(f"no weights file {path}")
        model = _from_checkpoint(path, cache_dir=cache_dir)
    else:
        model = _from_registry(
            text, weights=weights, weights_dirs=weights_dirs, cache_dir=cache_dir
        )
    return model.to(device).eval()


def _from_registry(name: str, **kwargs: Any) -> EmoCLIP:
    from . import hub_download

    source = resolve(name, **kwargs)
    spec = get_spec(name)
    if not source.available:
        raise WeightsNotFoundError(_how_to_get(name, source))
    if source.kind == "local":
        return _from_checkpoint(Path(source.path), cache_dir=kwargs.get("cache_dir"))
    if source.kind in ("hub-cache", "hub-download"):
        if "(unpinned)" in source.location:
            log.warning(
                "%s: weights from %s, not pinned to a commit; set %s to a commit hash",
                name,
                spec.hub_label(),
                spec.hub_revision_env or "the revision",
            )
        if source.kind == "hub-cache":
            path = Path(source.path)
        else:
            repo, revision = spec.repo(), spec.revision()
            assert repo is not None  # resolve() found one
            side = hub_download.download_file(
                repo, f"{name}.json", revision=revision, cache_dir=kwargs.get("cache_dir")
            )
            from .weights import read_config

            read_config(
                Path(side).with_suffix(".safetensors")
            )  # bounds checked before the weights download
            path = hub_download.download_file(
                repo, f"{name}.safetensors", revision=revision, cache_dir=kwargs.get("cache_dir")
            )
        model = _from_checkpoint(path, cache_dir=kwargs.get("cache_dir"), require_sha256=True)
        model.source = f"{source.location} (sha256 verified)"
        return model
    model = EmoCLIP(spec.config())
    if source.kind.startswith("open_clip"):
        state = pretrained_backbone_state(model.config.model, cache_dir=kwargs.get("cache_dir"))
        _load_backbone(model, state)
        model.source = f"open_clip pretrained {source.location}"
    else:
        model.source = source.location
    return model


def _load_backbone(model: EmoCLIP, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"pretrained backbone does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    with torch.no_grad():
        model.logit_scale.copy_(model.backbone.logit_scale.detach().reshape(()))


def _from_checkpoint(
    path: Path, *, cache_dir: str | Path | None = None, require_sha256: bool = False
) -> EmoCLIP:
    """Build from the sidecar config (bounds-checked), then load tensors (sha256-verified, and
    required to be recorded with `require_sha256`); fill a frozen backbone from open_clip."""
    config, state = load_checkpoint(path, require_sha256=require_sha256)
    model = _skeleton(config)
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if unexpected:
        raise CheckpointError(f"{path.name} has tensors this architecture lacks: {unexpected[:5]}")
    if any(not k.startswith("backbone.") for k in missing):
        raise CheckpointError(
            f"{path.name} lacks tensors: {[k for k in missing if not k.startswith('backbone.')][:5]}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{path.name}: {key} has shape {tuple(tensor.shape)}, "
                f"the config expects {tuple(expected[key].shape)}"
            )
    if missing:  # a checkpoint of the trained parts only: the frozen backbone comes from open_clip
        model = EmoCLIP(config)  # built in memory (random weights, replaced by the copies below)
        logit_scale = state.get("logit_scale")
        _load_backbone(model, pretrained_backbone_state(config.model, cache_dir=cache_dir))
        if logit_scale is not None:
            state["logit_scale"] = logit_scale
        model.load_state_dict(state, strict=False)
    else:
        model = _assign_state(model, config, state, expected)
    model.source = str(path)
    return model


def _skeleton(config: EmoCLIPConfig) -> EmoCLIP:
    """The architecture of `config` with its tensors on the meta device (nothing allocated),
    or in memory when it cannot be built there."""
    try:
        with torch.device("meta"):
            return EmoCLIP(config)
    except (RuntimeError, NotImplementedError, TypeError):
        return EmoCLIP(config)


def _assign_state(
    model: EmoCLIP,
    config: EmoCLIPConfig,
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
) -> EmoCLIP:
    """`model` holding the checkpoint's tensors themselves (``load_state_dict(assign=True)``).

    A safetensors file's tensors live in its private memory map, so the weights are not copied
    into a second buffer: a weight costs resident memory once read, and `emoclip.inference.memory` can give
    its pages back once a fast path holds its own copy. Tensors stored in another dtype are cast
    (copied) to the model's. Non-persistent buffers a meta skeleton lacks (CLIP's causal text
    mask) are rebuilt; when one is not understood, the model is built in memory instead.
    """
    state = {
        k: v if v.dtype == expected[k].dtype else v.to(expected[k].dtype) for k, v in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            if (
                attr == "attn_mask"
                and buf.ndim == 2
                and buf.shape[0] == buf.shape[1]
                and buf.is_floating_point()
            ):
                mask = torch.full(tuple(buf.shape), float("-inf"), dtype=buf.dtype).triu_(
                    1
                )  # CLIP's causal mask
                owner.register_buffer(attr, mask, persistent=False)
            else:
                model = EmoCLIP(config)
                model.load_state_dict(state, strict=True, assign=True)
                break
    return model


def _how_to_get(name: str, source: ModelSource) -> str:
    lines = [f"no weights for model {name!r}. Tried:"] + [f"  - {t}" for t in source.tried]
    lines.append("How to get weights:")
    lines += [f"  - {how}" for how in get_spec(name).how_to_get]
    return "\n".join(lines)
