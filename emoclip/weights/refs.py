"""Model references: the ONE reading of what a user names as a model, at every door.

A model reference is one of (`ref_kind`, first match wins):

* a **file**: a name ending in ``.safetensors`` or ``.json``, an existing file, or text with a
  path separator that exists on disk or starts with ``.``, ``~`` or ``/`` (``weights/x.safetensors``,
  ``./x``); it need not exist (loading it then says "no weights file");
* a **registry name** (`emoclip.weights.registry.REGISTRY`, e.g. ``emoclip-vitb32``);
* a **Hub id** ``owner/name`` or ``owner/name@revision``: the repo's ``NAME.safetensors`` and
  ``NAME.json`` (``NAME`` the repo's name, as ``emoclip.train`` publishes them); the sidecar
  must record the weights' sha256; without a commit-hash revision the weights are unpinned.

Anything else is a `ValueError` naming the three forms. `identify_model` says which weights a
reference would load (nothing is loaded): its `ModelIdentity` carries the weights' sha256 (the
sidecar's, which loading verifies, else the file's own), the source and the Hub revision, and is
what results record (`emoclip.provenance`) and what batch resume compares.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from emoclip.settings import ModelLocations

RefKind = Literal["file", "registry", "hub"]
_HUB_ID = re.compile(
    r"(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,95}))"
    r"(?:@(?P<revision>[A-Za-z0-9._/-]{1,128}))?"
)
_COMMIT = re.compile(r"[0-9a-f]{40}")


class ModelRefError(ValueError):
    """A model reference that is neither a file, a registry name nor a Hub id."""


@dataclass(frozen=True)
class ModelIdentity:
    """Which model, and exactly which weights, a reference names.

    Attributes:
        ref: The reference as given.
        kind: ``file`` | ``registry`` | ``hub`` (`ref_kind`).
        name: The registry name, the file's absolute path, or the Hub repo id.
        source: Where the weights come from: for a registry name its `ModelSource.kind`
            (``local``, ``hub-cache``, ``hub-download``, ``open_clip-*``, ``random``); ``file``;
            ``hub-cache`` / ``hub-download`` for a Hub id.
        location: A path or ``hf-hub:owner/name@revision/FILE``.
        weights_sha256: sha256 of the weights file (None when not known before a download, for
            open_clip pretrained and for random weights).
        revision: The Hub revision (None: not from the Hub; "main" when unpinned).
        path: The local weights file when there is one (a file, a local or cached Hub file).
    """

    ref: str
    kind: str
    name: str
    source: str
    location: str
    weights_sha256: str | None = None
    revision: str | None = None
    path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ref_kind(ref: str | os.PathLike) -> RefKind:
    """What `ref` names: a weights ``file``, a ``registry`` name or a ``hub`` id (module docstring).

    Raises:
        ModelRefError: none of the three.
    """
    from emoclip.weights.registry import REGISTRY

    text = str(ref).strip()
    path = Path(text).expanduser()
    if text.endswith((".safetensors", ".json")) or path.is_file():
        return "file"
    if (os.sep in text or "/" in text) and (path.exists() or text.startswith((".", "~", "/"))):
        return "file"
    if text in REGISTRY:
        return "registry"
    if _HUB_ID.fullmatch(text):
        return "hub"
    raise ModelRefError(
        f"unknown model {text!r}: give a registry name ({', '.join(REGISTRY)}), a .safetensors "
        f"file, or a Hugging Face Hub id owner/name[@revision]"
    )


def hub_parts(ref: str) -> tuple[str, str, str | None]:
    """``(repo id, weights file name, revision or None)`` of a Hub id ``owner/name[@revision]``."""
    match = _HUB_ID.fullmatch(ref.strip())
    if match is None:
        raise ModelRefError(f"{ref!r} is not a Hub id owner/name[@revision]")
    return match["repo"], f"{match['name']}.safetensors", match["revision"]


def hub_label(repo: str, revision: str | None) -> str:
    """``owner/name@rev``, with `` (unpinned)`` unless the revision is a commit hash."""
    if revision and _COMMIT.fullmatch(revision):
        return f"{repo}@{revision}"
    return f"{repo}@{revision or 'main'} (unpinned)"


def weights_sha256(path: str | Path) -> str:
    """sha256 of a weights file: the one its sidecar records (which loading verifies), else the
    file's own (computed once per path, size and modification time)."""
    path = Path(path)
    try:
        recorded = json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, str) and len(recorded) == 64:
        return recorded
    st = path.stat()
    return _file_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def identify_model(
    ref: str | os.PathLike,
    *,
    weights_dirs: Sequence[str | Path] = (),
    cache_dir: str | Path | None = None,
    probe_network: bool = False,
    locations: ModelLocations | None = None,
) -> ModelIdentity:
    """The `ModelIdentity` of a model reference, without loading it.

    A registry name is resolved with `locations` (`emoclip.settings.ModelLocations`, default: no
    overrides): the Hub revision it records is the one in force there.

    Raises:
        ModelRefError: not a file, registry name or Hub id.
        WeightsNotFoundError: a file reference to a missing file.
    """
    from emoclip.weights import hub
    from emoclip.weights.registry import WeightsNotFoundError, get_spec, resolve

    text = str(ref).strip()
    kind = ref_kind(text)
    if kind == "file":
        path = Path(text).expanduser().with_suffix(".safetensors")
        if not path.is_file():
            raise WeightsNotFoundError(f"no weights file {path}")
        path = path.resolve()
        sha = weights_sha256(path)
        return ModelIdentity(text, kind, str(path), "file", str(path), sha, path=str(path))
    if kind == "hub":
        repo, filename, revision = hub_parts(text)
        where = f"hf-hub:{hub_label(repo, revision).split(' ')[0]}/{filename}"
        found = hub.cached_file(repo, filename, revision=revision, cache_dir=cache_dir)
        hub_sha = weights_sha256(found) if found is not None else None
        how = "hub-cache" if found is not None else "hub-download"
        cached = str(found) if found is not None else ""
        return ModelIdentity(text, kind, repo, how, where, hub_sha, revision or "main", cached)
    found_in = resolve(
        text,
        weights_dirs=weights_dirs,
        cache_dir=cache_dir,
        probe_network=probe_network,
        locations=locations,
    )
    hub_rev = get_spec(text).revision(locations) or "main"
    rev = hub_rev if found_in.kind.startswith("hub") else None
    digest = weights_sha256(found_in.path) if found_in.path else None
    return ModelIdentity(
        text, kind, text, found_in.kind, found_in.location, digest, rev, found_in.path
    )


__all__ = [
    "ModelIdentity",
    "ModelRefError",
    "hub_label",
    "hub_parts",
    "identify_model",
    "ref_kind",
    "weights_sha256",
]
