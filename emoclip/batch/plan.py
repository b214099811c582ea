"""What a batch run must analyse: the run's provenance and which inputs it has not answered yet.

The resume rule: an input is skipped when ``out`` already holds a row with the same
``(input_key, config_key)``. ``input_key`` is the input's content key (path, size and
modification time, `inputs.input_key`); ``config_key`` is the digest of the run's
`emoclip.provenance.Provenance`: the model reference with its weights' sha256 and Hub revision
(the one in force in the run's `ModelLocations`), the class set's content hash, the package
version and the analysis settings. A replaced weights file, another Hub revision
(``EMOCLIP_HUB_REVISION``), an edited class set or changed settings give another
``config_key``, so every input is analysed again (the old rows stay, under their own key);
an unchanged rerun analyses nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from emoclip.batch.inputs import expand_inputs
from emoclip.batch.store import ResultsStore
from emoclip.classes import ClassSet
from emoclip.provenance import Provenance
from emoclip.settings import AnalysisSettings, ModelLocations


@dataclass
class BatchPlan:
    """A run's provenance (its digest is the ``config_key``), settings and pending inputs."""

    provenance: Provenance
    settings: dict[str, Any]
    classes: ClassSet
    model: str  # the reference the workers load (a file as its absolute path)
    total: int
    pending: pa.Table
    skipped: int
    locations: ModelLocations = dataclasses.field(default_factory=ModelLocations)

    @property
    def key(self) -> str:
        return self.provenance.digest()


def batch_settings(
    face_fallback: str = "center",
    frame_fps: float | None = None,
    settings: AnalysisSettings | None = None,
) -> dict[str, Any]:
    """The analysis settings of a batch run as a JSON-able mapping: `settings` (default: the
    driver's ``EMOCLIP_*`` environment, `AnalysisSettings.from_env`) with `face_fallback` and the
    frame folders' rate on top, as `emoclip.provenance.settings_dict` records them, plus
    ``frame_fps``. Workers build their predictor from this mapping (`predictor_settings`), so every
    node analyses with the driver's settings."""
    from emoclip.provenance import settings_dict

    if face_fallback not in ("center", "skip"):
        raise ValueError(f"face_fallback must be 'center' or 'skip', not {face_fallback!r}")
    base = settings if settings is not None else AnalysisSettings.from_env()
    chosen = dataclasses.replace(
        base,
        face_fallback=face_fallback,
        frame_folder_fps=float(frame_fps or base.frame_folder_fps),
    )
    return settings_dict(SimpleNamespace(settings=chosen)) | {"frame_fps": chosen.frame_folder_fps}


def predictor_settings(settings: dict[str, Any]) -> AnalysisSettings:
    """The `AnalysisSettings` of a `batch_settings` mapping (speed-only fields at their defaults)."""
    names = {f.name for f in dataclasses.fields(AnalysisSettings)}
    return AnalysisSettings(**{k: v for k, v in settings.items() if k in names})


def model_classes(identity: Any, weights_dirs: Sequence[str] = ()) -> ClassSet:
    """The class set a model's config asks for, read from its sidecar (nothing loaded)."""
    from emoclip.classes import preset
    from emoclip.model.config import EmoCLIPConfig
    from emoclip.weights.registry import get_spec

    location = Path(identity.path) if identity.path else None
    if location is None and identity.kind == "hub":  # not cached: its small sidecar alone
        from emoclip.weights import hub
        from emoclip.weights.refs import hub_parts

        repo, filename, revision = hub_parts(identity.ref)
        sidecar = filename.replace(".safetensors", ".json")
        location = hub.download_file(repo, sidecar, revision=revision).with_suffix(".safetensors")
    if location is not None and location.with_suffix(".json").is_file():
        config = EmoCLIPConfig.load(location.with_suffix(".json"))
    else:
        config = get_spec(identity.name).config()
    if config.classes:
        return ClassSet.from_dict(config.classes)
    return preset(config.default_classes)


def plan_batch(
    inputs: Sequence[str | os.PathLike],
    store: ResultsStore,
    *,
    model: str | None,
    classes: ClassSet | None,
    weights_dirs: Sequence[str] = (),
    settings: dict[str, Any],
    retry_errors: bool = False,
    limit: int | None = None,
    locations: ModelLocations | None = None,
) -> BatchPlan:
    """The run's provenance and the inputs of `inputs` that `store` has no row for yet.

    The model is found with `locations` (default: no overrides), which the plan carries to the
    workers, so every node looks for the same weights and Hub revision as the driver.

    Raises:
        ModelRefError, WeightsNotFoundError: the model cannot be named or found (before any
            work: never a silent switch to another model).
    """
    from emoclip.weights.refs import identify_model
    from emoclip.weights.registry import WeightsNotFoundError, best_available, how_to_get_message

    where = locations if locations is not None else ModelLocations()
    ref = model or best_available(weights_dirs=weights_dirs, locations=where)
    identity = identify_model(ref, weights_dirs=weights_dirs, probe_network=True, locations=where)
    if identity.source == "missing":
        from emoclip.weights.registry import resolve

        source = resolve(ref, weights_dirs=weights_dirs, locations=where)
        raise WeightsNotFoundError(how_to_get_message(ref, source))
    classes = classes or model_classes(identity, weights_dirs)
    provenance = Provenance.build(identity, classes, settings)
    table = expand_inputs(inputs)
    done = done_keys(store, with_errors=not retry_errors)
    key = provenance.digest()
    keys = table.column("input_key").to_pylist()
    pending_idx = [i for i, k in enumerate(keys) if (k, key) not in done]
    skipped = table.num_rows - len(pending_idx)
    if limit is not None:
        pending_idx = pending_idx[: max(0, int(limit))]
    pending = table.take(pa.array(pending_idx, type=pa.int64()))
    worker_ref = identity.name if identity.kind == "file" else ref
    return BatchPlan(
        provenance, settings, classes, worker_ref, table.num_rows, pending, skipped, where
    )


def done_keys(
    store: ResultsStore | str | os.PathLike, *, with_errors: bool = True
) -> set[tuple[str, str]]:
    """``(input_key, config_key)`` of the inputs already in `store` (a `ResultsStore`, local
    folder or URI; rows with an error included unless `with_errors` is False)."""
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    table = store.read(columns=["input_key", "config_key", "error"])
    if not table.num_rows:
        return set()
    keys = zip(
        table.column("input_key").to_pylist(),
        table.column("config_key").to_pylist(),
        table.column("error").to_pylist(),
    )
    return {(k, c) for k, c, e in keys if with_errors or e is None}


__all__ = [
    "BatchPlan",
    "batch_settings",
    "done_keys",
    "model_classes",
    "plan_batch",
    "predictor_settings",
]
