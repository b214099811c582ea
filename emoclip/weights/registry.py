"""The model registry: which named models exist, their policy, and where their weights would come from.

Resolution order for a named model (`resolve`; first hit wins):

1. an explicit ``weights=`` file, else the model's file in `ModelLocations.weights`;
2. ``NAME.safetensors`` in ``weights_dirs``, then `ModelLocations.weights_dirs`, then ``./weights``;
3. the model's Hugging Face Hub repo, only when one is configured: `ModelLocations.hub_repos`
   (and `ModelLocations.hub_revisions`, a commit hash, recommended). This project publishes no
   EmoCLIP weights yet, so there is **no default repo**: a name in a namespace the project does
   not own could serve any weights. Cache first, then a download when the Hub is reachable
   (`emoclip.weights.factory.load_model` checks the sidecar before downloading the weights);
4. for backbone-only models (the CLIP baseline), open_clip's pretrained weights;
5. for test models (``kind == "test"``), random initialisation.

`ModelLocations` (`emoclip.settings`) is a value: the functions here take it as ``locations=``
(default: no overrides) and read no environment. The doors build it with
`ModelLocations.from_env` (``EMOCLIP_WEIGHTS``, ``EMOCLIP_WEIGHTS_DIR``, ``EMOCLIP_HUB_REPO`` /
``EMOCLIP_HUB_REVISION``, ``EMOCLIP_TINY_HUB_REPO`` / ``EMOCLIP_TINY_HUB_REVISION``).

The registry owns model policy: each `ModelSpec` carries its ``kind`` (paper / baseline / toy /
test), its start-up ``rank``, a one-line ``description`` and ``how_to_get`` its weights;
`best_available` is the one start-up choice the CLI and the app share. Nothing here loads a model
or downloads weights: that is `emoclip.weights.factory`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emoclip.model.config import EmoCLIPConfig, packaged_config_dir
from emoclip.settings import MODEL_VARIABLES, ModelLocations
from emoclip.weights.files import pretrained_location

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
    hub_repo: str | None = None  # Hub repo of NAME.safetensors + NAME.json (None: only locations')
    hub_revision: str | None = None  # commit hash pinning hub_repo (None: "main", unpinned)
    backbone_only: bool = False  # complete with open_clip pretrained backbone weights alone
    random_init: bool = False  # a test model: random weights are acceptable
    listed: bool = True  # shown by available_models()

    def variable(self, part: str) -> str | None:
        """The environment variable a door reads for this model's ``weights``, ``hub_repo`` or
        ``hub_revision`` (`emoclip.settings.MODEL_VARIABLES`), for messages; None if it has none."""
        return MODEL_VARIABLES.get(self.name, {}).get(part)

    def repo(self, locations: ModelLocations | None = None) -> str | None:
        """The Hub repo in force: `locations`' for this model, else the spec's own.

        Raises:
            ValueError: the repo is not of the form ``owner/name``.
        """
        given = locations.hub_repo(self.name) if locations is not None else None
        repo = given or self.hub_repo
        if repo and not _REPO_ID.fullmatch(repo):
            where = self.variable("hub_repo") if given else None
            raise ValueError(
                f"{where or 'Hub repo'}={repo!r} for {self.name} is not a Hub repo id (owner/name)"
            )
        return repo or None

    def revision(self, locations: ModelLocations | None = None) -> str | None:
        """The Hub revision in force (`locations`' for this model, else the spec's); None means
        "main"."""
        given = locations.hub_revision(self.name) if locations is not None else None
        return given or self.hub_revision

    def hub_label(self, locations: ModelLocations | None = None) -> str | None:
        """``repo@revision`` as shown to users: ``owner/name@<commit>``, or with
        ``(unpinned)`` when the revision is a branch or tag (or missing, i.e. ``main``)."""
        repo = self.repo(locations)
        if not repo:
            return None
        revision = self.revision(locations)
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
    locations: ModelLocations | None = None,
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
        locations: Where weights are looked for (`ModelLocations`; default: no overrides).

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
                name,
                weights_dirs=weights_dirs,
                cache_dir=cache_dir,
                probe_network=probe_network,
                locations=locations,
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


def _weights_dirs(extra: Sequence[str | Path], locations: ModelLocations) -> list[Path]:
    dirs = [Path(d) for d in (*extra, *locations.weights_dirs)]
    dirs.append(Path.cwd() / "weights")
    return list(dict.fromkeys(dirs))


def resolve(
    name: str,
    *,
    weights: str | Path | None = None,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
    probe_network: bool = True,
    locations: ModelLocations | None = None,
) -> ModelSource:
    """Find where `name`'s weights would come from, without loading or downloading them.

    `locations` (default: no overrides) adds an explicit file, folders and the Hub repo and
    revision (module docstring: the order). Takes at most a couple of seconds with no network
    (one short TCP probe of the Hub).
    """
    from emoclip.weights import hub

    where = locations if locations is not None else ModelLocations()
    spec = get_spec(name)
    summary = spec.config().summary
    tried: list[str] = []
    explicit = weights or where.weights_file(name)
    if explicit:
        path = Path(explicit)
        if path.is_file():
            return ModelSource(name, True, "local", str(path), summary, path=str(path))
        raise WeightsNotFoundError(f"weights file for {name} not found: {path}")
    for folder in _weights_dirs(weights_dirs, where):
        path = folder / f"{name}.safetensors"
        if path.is_file():
            return ModelSource(
                name, True, "local", str(path), summary, tuple(tried), path=str(path)
            )
        tried.append(f"local file {path}: missing")
    try:
        repo = spec.repo(where)
    except ValueError as exc:
        repo = None
        tried.append(f"Hugging Face Hub: {exc}")
    if repo:
        revision = spec.revision(where)
        location = hub_location(spec, where)
        found = hub.cached_file(repo, f"{name}.safetensors", revision=revision, cache_dir=cache_dir)
        if found is not None and hub.cached_file(
            repo, f"{name}.json", revision=revision, cache_dir=cache_dir
        ):
            return ModelSource(
                name, True, "hub-cache", location, summary, tuple(tried), path=str(found)
            )
        if probe_network and hub.hub_online():
            return ModelSource(name, True, "hub-download", location, summary, tuple(tried))
        tried.append(f"{location}: not cached, Hub unreachable ({hub.offline_reason()})")
    elif spec.variable("hub_repo") and spec.kind == "paper":
        tried.append(
            f"Hugging Face Hub: no repo configured (this project publishes none yet); set "
            f"{spec.variable('hub_repo')}=owner/name and {spec.variable('hub_revision')}=<commit "
            f"hash> (a library call: ModelLocations(hub_repos=..., hub_revisions=...))"
        )
    if spec.backbone_only:
        model_cfg = spec.config().model
        location = pretrained_location(model_cfg) or "open_clip"
        from open_clip import pretrained as oc_pretrained

        pcfg = oc_pretrained.get_pretrained_cfg(
            model_cfg.backbone, model_cfg.backbone_pretrained or ""
        )
        if pcfg and hub.cached_open_clip_file(pcfg, cache_dir=cache_dir) is not None:
            return ModelSource(name, True, "open_clip-cache", location, summary, tuple(tried))
        if probe_network and hub.hub_online():
            return ModelSource(name, True, "open_clip-download", location, summary, tuple(tried))
        tried.append(
            f"open_clip pretrained {location}: not cached, Hub unreachable ({hub.offline_reason()})"
        )
    if spec.random_init:
        return ModelSource(
            name, True, "random", "random initialisation (test model)", summary, tuple(tried)
        )
    return ModelSource(name, False, "missing", "", summary, tuple(tried))


def hub_location(spec: ModelSpec, locations: ModelLocations | None = None) -> str:
    """``hf-hub:owner/name@revision/NAME.safetensors`` (`` (unpinned)`` without a commit hash)."""
    label = spec.hub_label(locations) or ""
    repo_rev, _, note = label.partition(" ")
    return f"hf-hub:{repo_rev}/{spec.name}.safetensors" + (f" {note}" if note else "")


def available_models(
    *,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
    locations: ModelLocations | None = None,
) -> list[ModelSource]:
    """Every listed model and where its weights would come from (no loading, no download)."""
    return [
        resolve(n, weights_dirs=weights_dirs, cache_dir=cache_dir, locations=locations)
        for n in list_models()
    ]


def how_to_get_message(name: str, source: ModelSource) -> str:
    """The `WeightsNotFoundError` message for `name`: every source `resolve` tried, then the
    spec's ``how_to_get`` lines (one ``  - `` bullet each)."""
    lines = [f"no weights for model {name!r}. Tried:"] + [f"  - {t}" for t in source.tried]
    lines.append("How to get weights:")
    lines += [f"  - {how}" for how in get_spec(name).how_to_get]
    return "\n".join(lines)
