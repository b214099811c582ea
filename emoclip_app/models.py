"""The background model manager shared by all sessions, and the session's model and classes.

`MODELS` finds, loads (in background threads) and shares models and predictors; they hold no
user data. `model_of`, `predictor` and `classes_of` are what handlers use: they turn loading
failures into clear messages for the user.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoclip.settings import ModelLocations

from . import settings
from .errors import error
from .state import Session

if TYPE_CHECKING:  # pragma: no cover
    from emoclip.classes import ClassSet
    from emoclip.inference.predictor import EmotionPredictor

try:  # Hugging Face ZeroGPU Spaces: only the model-running handlers ask for a GPU.
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment

    def gpu(fn: Callable | None = None, **_: Any) -> Any:
        """No-op stand-in for `spaces.GPU` (usable bare or with arguments)."""
        return fn if fn is not None else (lambda f: f)


# Which models, and in what order, is the registry's policy (emoclip.weights.registry: ModelSpec.rank and
# .kind, ranked_models, best_available); each name's own sources are ordered by
# emoclip.weights.registry.resolve (local file, Hub cache, Hub download, ...). _KIND_TEXT is about those
# sources (ModelSource.kind), not about ModelSpec.kind.
_KIND_TEXT = {
    "local": "local weights file",
    "hub-cache": "Hugging Face Hub (cached)",
    "hub-download": "Hugging Face Hub (download)",
    "open_clip-cache": "open_clip pretrained weights (cached)",
    "open_clip-download": "open_clip pretrained weights (download)",
    "random": "random initialisation",
    "missing": "not available",
}


def model_kind(name: str | None) -> str | None:
    """The registry's `ModelSpec.kind` of `name` ("paper" | "baseline" | "toy" | "test"), or None
    for a name the registry does not know."""
    if name is None:
        return None
    from emoclip.weights.registry import get_spec

    try:
        return get_spec(name).kind
    except KeyError:
        return None


def is_toy(name: str | None) -> bool:
    """Whether a model is a toy or a test model whose predictions say nothing about real faces."""
    return model_kind(name) in ("toy", "test")


# ------------------------------------------------------------------------------ model manager


@dataclass
class ModelStatus:
    """What the UI shows about one model."""

    name: str
    state: str  # "ready" | "loading" | "error" | "available" | "missing"
    kind: str
    where: str  # where the weights come from, for people
    summary: str
    detail: str = ""  # error message, or elapsed loading time


class ModelManager:
    """Finds, loads (in background threads) and shares models and predictors.

    Model weights and predictors are shared by all sessions (they hold no user data; a
    predictor's caches are keyed by content). `start()` returns at once: a thread discovers
    what is available and loads the best model, first loading a quick local one when the best
    must be downloaded, so the app is usable while the download runs.

    Args:
        weights_dirs: Folders searched for ``NAME.safetensors``.
        include_test_model: Offer the random-weight test model (for tests).
        forced: Load this model by default instead of the best available one.
        limits: Keyword arguments of `emoclip.inference.predictor.VideoLimits` for every predictor.
        device: Torch device for the models.
        sources: Already resolved sources, name -> `emoclip.ModelSource`, used instead of
            discovery (`sources()` then returns them; a name missing from it is unavailable).
        locations: Where models are looked for besides `weights_dirs`
            (`emoclip.settings.ModelLocations`; the app passes `settings.locations()`).
    """

    def __init__(
        self,
        weights_dirs: Sequence[Path],
        *,
        include_test_model: bool = False,
        forced: str | None = None,
        limits: dict[str, Any] | None = None,
        device: str = "cpu",
        sources: Mapping[str, Any] | None = None,
        locations: ModelLocations | None = None,
    ) -> None:
        self.weights_dirs = [Path(d) for d in weights_dirs]
        self.locations = locations if locations is not None else ModelLocations()
        self.include_test_model = include_test_model
        self.forced = forced or None
        self.limits = limits
        self.device = device
        self._lock = threading.RLock()
        self._sources: dict[str, Any] | None = dict(sources) if sources is not None else None
        self._models: dict[str, Any] = {}
        self._loading: dict[str, tuple[float, threading.Event]] = {}
        self._errors: dict[str, str] = {}
        self._predictors: dict[tuple[str, str], EmotionPredictor] = {}
        self._default: str | None = None
        self.target: str | None = None  # the model the background loader is working towards
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()  # a first model is loaded (or nothing could be)

    # ---- discovery -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Model names in preference order (the forced one first): the registry's listed models by
        rank, and with `include_test_model` its best-ranked test model."""
        from emoclip.weights.registry import ranked_models

        names = ranked_models()
        if self.include_test_model:
            names += [n for n in ranked_models(include_test=True) if n not in names][:1]
        if self.forced:
            names = [self.forced] + [n for n in names if n != self.forced]
        return names

    def sources(self) -> dict[str, Any]:
        """name -> `emoclip.ModelSource` (computed once; never downloads)."""
        with self._lock:
            if self._sources is not None:
                return self._sources
        found = {}
        for name in self.names():
            try:
                found[name] = model_source(name, self.weights_dirs, self.locations)
            except (KeyError, OSError, ValueError) as exc:  # unknown name, unreadable file
                self._errors[name] = str(exc)
        with self._lock:
            self._sources = found
        return found

    def available(self) -> list[str]:
        """Names that can be loaded, best first."""
        return [n for n, s in self.sources().items() if s.available]

    # ---- loading ---------------------------------------------------------------------------
    def start(self) -> None:
        """Discover models and load the best one in a background thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._boot, name="emoclip-model-loader", daemon=True
            )
        self._thread.start()

    def _boot(self) -> None:
        try:
            from emoclip.weights.registry import best_available

            sources = self.sources()
            order = self.available()
            if self.forced:  # the operator's choice or nothing: never a silent switch to another
                if self.forced not in self._errors:
                    self.target = self.forced
                    self._try_load(self.forced)
                return
            if order:  # the start-up choice the CLI makes too
                best = best_available(include_test=self.include_test_model, sources=sources)
                order = [best] + [n for n in order if n != best] if best in order else order
            if order and sources[order[0]].kind.endswith("download"):
                quick = [n for n in order[1:] if not sources[n].kind.endswith("download")]
                if quick:  # usable at once while the better model downloads
                    self._try_load(quick[0])
            for name in order:
                self.target = name
                if self._try_load(name):
                    break
        finally:
            self.target = None
            self._ready.set()

    def _try_load(self, name: str) -> bool:
        try:
            self.model(name)
            self.predictor(name).parts.encoder.tower_report()  # the tower is chosen while loading
            return True
        except Exception:  # noqa: BLE001 - recorded in _errors and shown in the UI
            return False

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Start if needed and wait until a first model is loaded; True when one is."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._default is None:
            left = None if deadline is None else deadline - time.monotonic()
            if self._ready.is_set() or (left is not None and left <= 0):
                break
            self._ready.wait(0.05 if left is None else min(0.05, max(left, 0)))
        return self._default is not None

    @property
    def default(self) -> str | None:
        """The best model loaded so far (what sessions that did not choose a model use)."""
        return self._default

    def loading(self) -> list[str]:
        """Models being loaded right now."""
        with self._lock:
            return list(self._loading)

    def started(self) -> bool:
        """Whether `start()` was called."""
        return self._thread is not None

    def busy(self) -> bool:
        """Whether background work may still change the default model."""
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the background discovery and loading started by `start()` has finished
        (every model it tried is loaded or failed), at most `timeout` seconds.

        Returns:
            True when no background work is running (also when `start()` was never called);
            False when the timeout ran out first.
        """
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy()

    def model(self, name: str):
        """The loaded model `name`, loading it now if needed (concurrent callers share one load)."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            pending = self._loading.get(name)
            if pending is None:
                event = threading.Event()
                self._loading[name] = (time.monotonic(), event)
        if pending is not None:
            pending[1].wait()
            with self._lock:
                if name in self._models:
                    return self._models[name]
            raise RuntimeError(self._errors.get(name, f"model {name} could not be loaded"))
        try:
            import emoclip

            model = emoclip.load_model(
                name, weights_dirs=self.weights_dirs, device=self.device, locations=self.locations
            )
        except Exception as exc:
            with self._lock:
                self._errors[name] = f"{exc.__class__.__name__}: {exc}"
                self._loading.pop(name)[1].set()
            raise
        with self._lock:
            self._models[name] = model
            self._errors.pop(name, None)
            self._adopt(name)
            self._loading.pop(name)[1].set()
        self._ready.set()
        return model

    def _adopt(self, name: str) -> None:
        """Make the just loaded `name` the default when there is none yet or it ranks higher in
        `names()` (a name outside `names()` never displaces a default). Call holding the lock."""
        names = self.names()
        if self._default is None or (
            name in names
            and (self._default not in names or names.index(name) < names.index(self._default))
        ):
            self._default = name

    def predictor(self, name: str, fallback: str = "center") -> EmotionPredictor:
        """A shared predictor for (model, face fallback); both fallbacks share text embeddings."""
        key = (name, fallback)
        with self._lock:
            if key in self._predictors:
                return self._predictors[key]
        model = self.model(name)
        from emoclip.inference.predictor import EmotionPredictor
        from emoclip.media.inputs import VideoLimits

        with self._lock:
            if key not in self._predictors:
                limits = VideoLimits(**(self.limits or {}))
                shared = [q.parts.text_cache for q in self._predictors.values() if q.model is model]
                p = EmotionPredictor(
                    model,
                    settings.analysis(),
                    text_cache=shared[0] if shared else None,
                    face_fallback=fallback,
                    limits=limits,
                    video_cache_size=16,
                )
                self._predictors[key] = p
            return self._predictors[key]

    def inject(self, name: str, model) -> None:
        """Register an already loaded model (tests, benchmarks) as if it had just finished
        loading: it becomes the default when there is none yet or it ranks higher in `names()`."""
        with self._lock:
            self._models[name] = model
            self._adopt(name)
        self._ready.set()

    # ---- reporting -------------------------------------------------------------------------
    def status(self, name: str) -> ModelStatus:
        """State of one model for the status line and the model card."""
        source = self.sources().get(name)
        kind = source.kind if source else "missing"
        summary = source.summary if source else ""
        with self._lock:
            if name in self._models:
                model = self._models[name]
                where = str(getattr(model, "source", "") or _KIND_TEXT.get(kind, kind))
                return ModelStatus(name, "ready", kind, where, model.config.summary or summary)
            if name in self._loading:
                elapsed = time.monotonic() - self._loading[name][0]
                return ModelStatus(
                    name, "loading", kind, _where(source), summary, f"{elapsed:.0f} s"
                )
            if name in self._errors:
                return ModelStatus(name, "error", kind, _where(source), summary, self._errors[name])
        state = "available" if source is not None and source.available else "missing"
        detail = "; ".join(source.tried) if source is not None and not source.available else ""
        return ModelStatus(name, state, kind, _where(source), summary, detail)

    def close(self) -> None:
        """Release the predictors' face detectors."""
        with self._lock:
            for p in self._predictors.values():
                p.close()


def model_source(
    ref: str, weights_dirs: Sequence[Path] = (), locations: ModelLocations | None = None
) -> Any:
    """Where model `ref` would come from (an `emoclip.ModelSource`): a registry name as the
    registry resolves it; a ``.safetensors`` file or a Hub id (`emoclip.weights.refs`, the
    reading every door shares) as that file or Hub repo.

    Raises:
        ValueError: `ref` is neither (`ModelRefError`); WeightsNotFoundError: a missing file.
    """
    from emoclip.weights.refs import identify_model, ref_kind
    from emoclip.weights.registry import ModelSource, resolve

    if ref_kind(ref) == "registry":
        return resolve(ref, weights_dirs=weights_dirs, locations=locations)
    identity = identify_model(ref, weights_dirs=weights_dirs, locations=locations)
    available = identity.source != "hub-download"
    if not available:
        from emoclip.weights import hub

        available = hub.hub_online()
    tried = () if available else (f"{identity.location}: not cached, Hub unreachable",)
    summary = f"weights from {identity.location}"
    return ModelSource(
        ref, available, identity.source, identity.location, summary, tried, identity.path
    )


def forced_failure() -> str | None:
    """Why the model the operator chose (``EMOCLIP_APP_MODEL``) could not be loaded, or None."""
    name = MODELS.forced
    if name is None or MODELS.default is not None:
        return None
    st = MODELS.status(name)
    if st.state in ("error", "missing"):
        return f"EMOCLIP_APP_MODEL={name} could not be loaded: {st.detail or st.state}"
    return None


def _where(source: Any) -> str:
    if source is None:
        return "unknown"
    text = _KIND_TEXT.get(source.kind, source.kind)
    return f"{text}: {source.location}" if source.location else text


MODELS = ModelManager(
    [settings.WEIGHTS],
    include_test_model=settings.TEST_MODEL_OFFERED,
    forced=settings.FORCED_MODEL,
    limits=settings.VIDEO_LIMITS,
    device=settings.DEVICE,
    locations=settings.locations(),
)


# ------------------------------------------------------------------------ the session's model


def model_of(session: Session) -> str:
    """The model this session runs, waiting for the first one to load if needed."""
    if session.model:
        return session.model
    if MODELS.default is None and not MODELS.wait_ready(settings.MODEL_WAIT_SECONDS):
        raise error(no_model_message())
    return MODELS.default  # type: ignore[return-value]


def no_model_message() -> str:
    """What was tried, for the error shown when no model could be loaded."""
    lines = ["No model could be loaded."]
    for name in MODELS.names():
        st = MODELS.status(name)
        lines.append(f"{name}: {st.state} {st.detail}".strip())
    lines.append("See the About tab: how to get the weights.")
    return "\n".join(lines)


def predictor(name: str, fallback: str = "center") -> EmotionPredictor:
    """The shared predictor of model `name`; a load failure becomes the user's error message."""
    try:
        return MODELS.predictor(name, fallback)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise error(f"model {name} could not be loaded: {exc}") from exc


def classes_of(session: Session) -> ClassSet:
    """The session's class set (the model's default until the user edits it)."""
    if session.classes is not None:
        return session.classes
    return predictor(model_of(session)).default_classes()
