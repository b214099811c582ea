"""Provenance: what produced a result (model and weights, class set, package, settings).

Every result records its `Provenance`: ``Prediction.to_dict()["provenance"]`` (JSON), a
``NAME.provenance.json`` file beside every CSV written to a path (the CSV stays a plain table
that every reader takes as it is), the ``provenance`` column of a batch's Parquet rows, and the
app's downloads. ``digest()`` is the batch resume key's configuration part: a result is reused
only when model identity (reference, weights sha256, Hub revision), class set content, package
version and settings are all unchanged.

The digest leaves out where the weights were read from (``model_source``, ``model_location``):
the same weights found in another folder, on another node or in the Hub cache are the same model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoclip.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.classes import ClassSet

DIGEST_FIELDS = (
    "model",
    "weights_sha256",
    "hub_revision",
    "class_set",
    "class_set_sha256",
    "package_version",
    "settings",
)


@dataclass(frozen=True)
class Provenance:
    """What produced a result.

    Attributes:
        model: The model reference: registry name, absolute weights path or Hub id.
        model_source: Where the weights came from (`ModelIdentity.source`: ``local``, ``file``,
            ``hub-cache``, ``random``, ...).
        model_location: The weights' path or ``hf-hub:`` location.
        weights_sha256: sha256 of the weights file (None for random or open_clip weights).
        hub_revision: The Hub revision the weights came from (None: not from the Hub).
        class_set: The class set's name.
        class_set_sha256: `class_set_sha256` of its content.
        package_version: emoclip's version.
        settings: The analysis settings in force (JSON-able).
    """

    model: str
    model_source: str
    model_location: str
    weights_sha256: str | None
    hub_revision: str | None
    class_set: str
    class_set_sha256: str
    package_version: str = __version__
    settings: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {**asdict(self), "settings": _jsonable(dict(self.settings))}

    def digest(self) -> str:
        """sha256 hex of the `DIGEST_FIELDS` as canonical JSON (stable across processes)."""
        data = self.as_dict()
        text = json.dumps({k: data[k] for k in DIGEST_FIELDS}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    @classmethod
    def build(cls, identity: Any, classes: ClassSet, settings: Mapping[str, Any]) -> Provenance:
        """From a `emoclip.weights.refs.ModelIdentity`, a class set and the settings mapping."""
        return cls(
            model=identity.name,
            model_source=identity.source,
            model_location=identity.location,
            weights_sha256=identity.weights_sha256,
            hub_revision=identity.revision,
            class_set=classes.name,
            class_set_sha256=class_set_sha256(classes),
            settings=_jsonable(dict(settings)),
        )


def class_set_sha256(classes: ClassSet) -> str:
    """sha256 of a class set's content: class names with their descriptions, then compounds with
    their parts and weights, in score order, as canonical JSON (the set's name is not part of it)."""
    data = {
        "classes": [[c.name, list(c.descriptions)] for c in classes.classes],
        "compounds": [
            [c.name, list(c.parts), None if c.weights is None else [float(w) for w in c.weights]]
            for c in classes.compounds
        ],
    }
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def settings_dict(predictor: Any) -> dict[str, Any]:
    """The settings of a predictor that change its answers, as a JSON-able mapping.

    The one place provenance reads settings (when `emoclip.settings.AnalysisSettings` lands,
    this returns its ``as_dict()``). Thread counts, prefetching and cache sizes change how fast,
    not what, and are left out.
    """
    return {
        "face_fallback": predictor.face_fallback,
        "max_faces": int(predictor.max_faces),
        "precision": predictor.requested_precision,
        "interpolate_faces": bool(predictor.interpolate_faces),
        "min_face_score": float(predictor.min_face_score),
        "min_track_frames": predictor.min_track_frames,
        "min_face_coverage": float(predictor.min_face_coverage),
        "limits": _jsonable(predictor.limits),
    }


def model_identity(model: Any) -> Any:
    """The `ModelIdentity` the loader attached to `model`; for a model built another way, one
    made of its config name and ``source`` (no sha256)."""
    identity = getattr(model, "identity", None)
    if identity is not None:
        return identity
    from emoclip.weights.refs import ModelIdentity

    source = str(getattr(model, "source", "") or "unknown")
    return ModelIdentity(model.config.name, "model", model.config.name, "in-memory", source)


def provenance_of(predictor: Any, classes: ClassSet) -> Provenance:
    """The provenance of `predictor`'s results for `classes`."""
    return Provenance.build(model_identity(predictor.model), classes, settings_dict(predictor))


def write_sidecar(csv_path: str | Path, provenance: Any) -> Path:
    """Write ``NAME.provenance.json`` beside the CSV ``NAME.csv``: one provenance mapping, or a
    list of them when the rows come from several (each with its ``digest``)."""
    items = provenance if isinstance(provenance, list) else [provenance]
    data = [_with_digest(p) for p in items if p]
    path = Path(csv_path).with_suffix(".provenance.json")
    text = json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8", errors="backslashreplace")
    return path


def _with_digest(p: Provenance | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(p, Provenance):
        return p.as_dict() | {"digest": p.digest()}
    return dict(p)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    return str(value)


__all__ = [
    "DIGEST_FIELDS",
    "Provenance",
    "class_set_sha256",
    "model_identity",
    "provenance_of",
    "settings_dict",
    "write_sidecar",
]
