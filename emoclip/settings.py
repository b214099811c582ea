"""Settings as values, and the one place of the library that reads them from the environment.

* `AnalysisSettings`: every knob of an analysis (`AnalysisSettings.from_env`).
* `ModelLocations`: where models' weights are looked for: explicit weights files, extra weights
  folders, per-model Hugging Face Hub repo and revision (`ModelLocations.from_env`).
* `native_logs_enabled` / `debug_tracebacks`: the log-level switches ``EMOCLIP_LOG_LEVEL`` and
  ``EMOCLIP_DEBUG``.

The library never reads ``os.environ`` for these: the doors (the CLI, the app, the batch driver,
the benchmarks) build the values with `from_env` (plus their flags) and hand them down
(`EmotionPredictor(model, settings=...)`, `load_model(name, locations=...)`); a script builds
them directly, and a library call given none uses the defaults (no overrides). Each field
documents its default (``field(metadata={"doc": ...})``) and, when it has one, the ``EMOCLIP_*``
variable that sets it (``metadata["env"]``); `as_dict` is the JSON form.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoclip.media.inputs import VideoLimits

__all__ = [
    "FALLBACKS",
    "MODEL_VARIABLES",
    "PRECISIONS",
    "AnalysisSettings",
    "ModelLocations",
    "debug_tracebacks",
    "native_logs_enabled",
    "show_native_logs",
]

PRECISIONS = ("auto", "fp32", "bf16")
FALLBACKS = ("center", "skip")


def _doc(text: str, env: str | None = None, parse: str | None = None) -> dict[str, str]:
    return {"doc": text} | ({"env": env, "parse": parse or "str"} if env else {})


@dataclass(frozen=True)
class AnalysisSettings:
    """How an input is analysed: sampling, limits, face thresholds, fallback, precision, threads,
    caches. Every field has a default; `from_env` builds one from ``EMOCLIP_*`` variables.

    A ValueError (naming the field) is raised for a value out of range.
    """

    batch_size: int = field(default=32, metadata=_doc("Frames per image-tower forward pass."))
    face_fallback: str = field(
        default="center",
        metadata=_doc(
            'Frames without a face: "center" analyses the full-frame centre crop, "skip" '
            "leaves them out (an input without any face is then an error)."
        ),
    )
    max_faces: int = field(default=4, metadata=_doc("Faces tracked per video frame."))
    frame_folder_fps: float = field(
        default=25.0,
        metadata=_doc(
            "Frame rate a folder of numbered frames is read at unless the call gives one "
            "(DFEW, MAFW, FERV39k and AFEW are 25 fps); the CLI's --fps and batch's --frame-fps "
            "override it alike."
        ),
    )
    max_bytes: int | None = field(
        default=None, metadata=_doc("Refuse files larger than this many bytes (None: no limit).")
    )
    max_duration: float | None = field(
        default=None,
        metadata=_doc(
            "Refuse clips longer than this many seconds, also while decoding (None: no limit)."
        ),
    )
    max_pixels: int | None = field(
        default=None,
        metadata=_doc(
            "Refuse videos and images with more pixels (width x height; None: no limit)."
        ),
    )
    max_sampled_frames: int | None = field(
        default=None, metadata=_doc("Stop sampling a clip after this many frames (None: no limit).")
    )
    min_face_score: float = field(
        default=0.5,
        metadata=_doc(
            "Detections scoring less are not faces (README 'Faces in the wild': chosen on the "
            "calibration part of the face evaluation set; tracks must also pass the "
            "face-presence check); = faces.MIN_FACE_SCORE.",
            "EMOCLIP_MIN_FACE_SCORE",
            "float",
        ),
    )
    min_track_frames: int | None = field(
        default=None,
        metadata=_doc(
            "Sampled frames a face track needs to count as a person; None: 10 % of the clip's "
            "sampled frames, at least 2, at most 8 (1 for a one-frame clip).",
            "EMOCLIP_MIN_TRACK_FRAMES",
            "count",
        ),
    )
    min_face_coverage: float = field(
        default=0.5,
        metadata=_doc(
            "Warn when a face is found in fewer than this share of the sampled frames.",
            "EMOCLIP_MIN_FACE_COVERAGE",
            "float",
        ),
    )
    interpolate_faces: bool = field(
        default=True,
        metadata=_doc(
            "Detect faces on every other sampled frame when the neighbours' boxes pair up "
            "(IoU >= 0.6); halves detection on steady footage.",
            "EMOCLIP_INTERPOLATE_FACES",
            "flag",
        ),
    )
    precision: str = field(
        default="auto",
        metadata=_doc(
            'Image-tower precision: "fp32", "bf16" (the fastest bf16 tower within cosine 0.999 '
            'of fp32; refused when none is) or "auto" (every candidate tower this CPU runs '
            "natively checked against fp32 and timed once per machine, the fastest passing kept: "
            "`emoclip.inference.autotune`).",
            "EMOCLIP_PRECISION",
            "precision",
        ),
    )
    release_weights: bool = field(
        default=True,
        metadata=_doc(
            "Give back the resident pages of memory-mapped fp32 weights once a bf16 or folded "
            "copy serves inference.",
            "EMOCLIP_RELEASE_WEIGHTS",
            "flag",
        ),
    )
    compile_tower: bool = field(
        default=False,
        metadata=_doc(
            "Also consider image towers compiled ahead of time by torch's inductor (needs a C++ "
            "compiler): compiled once per model and machine in the background while another "
            "tower serves (minutes on 2 cores), kept in the tower cache, used when faster. "
            "Off by default: on AMD Zen 4 it measured 0.19x the oneDNN bf16 tower "
            "(benchmarks/README.md).",
            "EMOCLIP_COMPILE_TOWER",
            "flag",
        ),
    )
    tower_cache: str | None = field(
        default=None,
        metadata=_doc(
            'Where each machine\'s measured image-tower choice is kept: a folder; "off" keeps it '
            "in this process only; default ~/.cache/emoclip/tower.",
            "EMOCLIP_TOWER_CACHE",
            "str",
        ),
    )
    prefetch: bool = field(
        default=True,
        metadata=_doc(
            "Decode and detect faces in a background thread ahead of the encoder.",
            "EMOCLIP_PREFETCH",
            "flag",
        ),
    )
    live_threads: int | None = field(
        default=None,
        metadata=_doc(
            "Intra-op threads for small work (live frames, single windows, a few new class "
            'descriptions, scoring), set for the calling thread only. None ("auto"): one thread '
            "or torch's thread count, whichever has been faster per item for that kind of work "
            "lately, timed as it runs (`emoclip.inference.small_work`: on an idle 2-core Zen 4 "
            "one frame 66.6 ms on one thread vs 38.6 ms on two; on a busy CPU a second thread "
            "waits, one description 20-30 ms on one vs 660-1060 ms on two); 0 keeps torch's "
            "setting; a number forces it.",
            "EMOCLIP_LIVE_THREADS",
            "threads",
        ),
    )
    encode_workers: int = field(
        default=0,
        metadata=_doc(
            "Data-parallel workers a batch of frames is split over (one intra-op thread each); "
            "0: torch's intra-op thread count; 1: the whole batch on torch's threads.",
            "EMOCLIP_ENCODE_WORKERS",
            "int",
        ),
    )
    video_cache_size: int = field(
        default=8, metadata=_doc("Encoded inputs kept for re-scoring (0: none).")
    )

    def __post_init__(self) -> None:
        if self.face_fallback not in FALLBACKS:
            raise ValueError(
                f"face_fallback must be 'center' or 'skip', not {self.face_fallback!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        for name in ("min_face_score", "min_face_coverage"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0.0, 1.0], got {value}")
        at_least = {"batch_size": 1, "max_faces": 1, "live_threads": 0, "encode_workers": 0}
        at_least |= {"video_cache_size": 0, "min_track_frames": 1}
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}")
        rate = self.frame_folder_fps
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"frame_folder_fps must be a positive number, got {rate!r}")

    @property
    def limits(self) -> VideoLimits:
        """The input limits as the media layer takes them."""
        from emoclip.media.inputs import VideoLimits

        return VideoLimits(
            self.max_bytes, self.max_duration, self.max_pixels, self.max_sampled_frames
        )

    def replace(self, **changes: Any) -> AnalysisSettings:
        """A copy with `changes` (checked); ``limits=VideoLimits(...)`` sets the four limit fields."""
        limits = changes.pop("limits", None)
        if limits is not None:
            changes |= dataclasses.asdict(limits)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Every field by name: JSON-able (numbers, strings, booleans, None)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> AnalysisSettings:
        """Settings from ``EMOCLIP_*`` variables (`environ`, default ``os.environ``), then
        `overrides` (a door's flags). An unset or blank variable keeps the default.

        Raises:
            ValueError: A malformed value (naming the variable) or one out of range.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata.get("env")
            raw = (env.get(name) or "").strip() if name else ""
            if name and raw:
                values[f.name] = _parse(name, raw, f.metadata["parse"])
        return cls().replace(**(values | overrides))

    @classmethod
    def documented(cls) -> dict[str, str]:
        """Each field's documentation, by name (with its variable, when it has one)."""
        out = {}
        for f in dataclasses.fields(cls):
            env = f.metadata.get("env")
            out[f.name] = f.metadata["doc"] + (f" Environment: {env}." if env else "")
        return out


def _parse(name: str, raw: str, kind: str) -> Any:
    """One variable's text as its field's type; ValueError naming the variable."""
    if kind == "flag":
        return raw.lower() not in ("0", "false", "no", "off")
    if kind == "precision":
        return raw.lower()
    if kind == "threads" and raw.lower() == "auto":
        return None
    if kind == "str":
        return raw
    try:
        return float(raw) if kind == "float" else int(raw)  # "int", "count", "threads"
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


# The variables `ModelLocations.from_env` reads for each registry model that has them:
# model name -> {"weights": explicit weights file, "hub_repo": Hub repo, "hub_revision": its
# revision}. The registry names them in its messages (`emoclip.weights.registry`).
MODEL_VARIABLES: dict[str, dict[str, str]] = {
    "emoclip-vitb32": {
        "weights": "EMOCLIP_WEIGHTS",
        "hub_repo": "EMOCLIP_HUB_REPO",
        "hub_revision": "EMOCLIP_HUB_REVISION",
    },
    "emoclip-synthetic-tiny": {
        "hub_repo": "EMOCLIP_TINY_HUB_REPO",
        "hub_revision": "EMOCLIP_TINY_HUB_REVISION",
    },
}
WEIGHTS_DIR_VARIABLE = "EMOCLIP_WEIGHTS_DIR"


def _by_model(value: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    """A ``model name -> text`` mapping with blank entries dropped (TypeError naming `what`)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must map model names to text, got {type(value).__name__}")
    return {str(k): str(v).strip() for k, v in value.items() if v is not None and str(v).strip()}


@dataclass(frozen=True)
class ModelLocations:
    """Where named models' weights are looked for, beyond a call's own ``weights=`` and
    ``weights_dirs=`` (`emoclip.weights.registry.resolve` gives the order).

    The default value has no overrides: a library call finds ``./weights``, the Hub cache of a
    repo the registry itself names (none yet) and open_clip's weights, and nothing the
    environment says. `from_env` builds the value the CLI, the app and the batch driver use.
    Mappings are keyed by registry name (``emoclip-vitb32``, ...).
    """

    weights: Mapping[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            "An explicit weights file per model, used before any folder or the Hub.",
            "EMOCLIP_WEIGHTS (emoclip-vitb32)",
        ),
    )
    weights_dirs: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Extra folders searched for NAME.safetensors, after a call's own weights_dirs and "
            "before ./weights.",
            f"{WEIGHTS_DIR_VARIABLE} (folders joined by os.pathsep)",
        ),
    )
    hub_repos: Mapping[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            "A Hugging Face Hub repo (owner/name) per model, holding NAME.safetensors + "
            "NAME.json; overrides the registry's (none is set: this project publishes none).",
            "EMOCLIP_HUB_REPO (emoclip-vitb32), EMOCLIP_TINY_HUB_REPO (emoclip-synthetic-tiny)",
        ),
    )
    hub_revisions: Mapping[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            'The Hub revision per model: a commit hash pins the weights; none means "main" '
            "(unpinned, warned about). Recorded in results' provenance.",
            "EMOCLIP_HUB_REVISION (emoclip-vitb32), EMOCLIP_TINY_HUB_REVISION "
            "(emoclip-synthetic-tiny)",
        ),
    )

    def __post_init__(self) -> None:
        for name in ("weights", "hub_repos", "hub_revisions"):
            object.__setattr__(self, name, _by_model(getattr(self, name), name))
        dirs = self.weights_dirs
        if isinstance(dirs, (str, os.PathLike)):
            raise TypeError("weights_dirs must be a sequence of folders, not one path")
        object.__setattr__(self, "weights_dirs", tuple(str(d) for d in dirs if str(d)))

    def __hash__(self) -> int:
        maps = (self.weights, self.hub_repos, self.hub_revisions)
        return hash((self.weights_dirs, *(tuple(sorted(m.items())) for m in maps)))

    def weights_file(self, name: str) -> str | None:
        """The explicit weights file of model `name`, or None."""
        return self.weights.get(name)

    def hub_repo(self, name: str) -> str | None:
        """The Hub repo this value gives model `name` (not validated here), or None."""
        return self.hub_repos.get(name)

    def hub_revision(self, name: str) -> str | None:
        """The Hub revision this value gives model `name`, or None."""
        return self.hub_revisions.get(name)

    def replace(self, **changes: Any) -> ModelLocations:
        """A copy with `changes`."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Every field by name: JSON-able (mappings of text, a list of folders)."""
        return {
            "weights": dict(self.weights),
            "weights_dirs": list(self.weights_dirs),
            "hub_repos": dict(self.hub_repos),
            "hub_revisions": dict(self.hub_revisions),
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ModelLocations:
        """Locations from the variables of `MODEL_VARIABLES` and ``EMOCLIP_WEIGHTS_DIR``
        (`environ`, default ``os.environ``), then `overrides`. Blank variables are unset."""
        env = os.environ if environ is None else environ
        values: dict[str, dict[str, str]] = {"weights": {}, "hub_repos": {}, "hub_revisions": {}}
        fields = {"weights": "weights", "hub_repo": "hub_repos", "hub_revision": "hub_revisions"}
        for model, variables in MODEL_VARIABLES.items():
            for part, variable in variables.items():
                raw = (env.get(variable) or "").strip()
                if raw:
                    values[fields[part]][model] = raw
        dirs = (env.get(WEIGHTS_DIR_VARIABLE) or "").strip()
        folders = tuple(p for p in dirs.split(os.pathsep) if p.strip())
        return cls(**(values | {"weights_dirs": folders} | overrides))

    @classmethod
    def documented(cls) -> dict[str, str]:
        """Each field's documentation, by name (with its variables)."""
        return {
            f.name: f"{f.metadata['doc']} Environment: {f.metadata['env']}."
            for f in dataclasses.fields(cls)
        }


def native_logs_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``EMOCLIP_LOG_LEVEL`` is ``debug`` (any case) in `environ` (default
    ``os.environ``): native libraries' log lines are shown (`emoclip.quiet`)."""
    env = os.environ if environ is None else environ
    return (env.get("EMOCLIP_LOG_LEVEL") or "").strip().lower() == "debug"


def show_native_logs() -> None:
    """Let native log lines through in this process and the processes it starts (``--verbose``):
    sets ``EMOCLIP_LOG_LEVEL=debug``, which `native_logs_enabled` then reads."""
    os.environ["EMOCLIP_LOG_LEVEL"] = "debug"


def debug_tracebacks(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``EMOCLIP_DEBUG`` is set (non-empty) in `environ` (default ``os.environ``): the
    CLI re-raises unexpected errors with their traceback."""
    env = os.environ if environ is None else environ
    return bool(env.get("EMOCLIP_DEBUG"))
