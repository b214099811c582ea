"""The app's limits and paths, read once from the environment when the package is imported.

Environment: EMOCLIP_APP_MODEL (model to run: registry name, .safetensors path or Hub id; one that
cannot be loaded is shown as an error, never replaced by another), EMOCLIP_APP_TEST_MODEL=1 (offer the
random-weight test model), EMOCLIP_DEVICE, EMOCLIP_MAX_UPLOAD_MB (200), EMOCLIP_MAX_SECONDS (600),
EMOCLIP_MAX_MEGAPIXELS (9), EMOCLIP_MAX_CLASSES (64), EMOCLIP_CONCURRENCY (2),
EMOCLIP_QUEUE_SIZE (32), EMOCLIP_LIVE_SECONDS (120), EMOCLIP_MAX_COLLECTION_CLIPS (50000: clips
of an uploaded batch results folder the explorer loads), EMOCLIP_FILES_SECONDS (3600: uploads and
downloads are deleted after this long), EMOCLIP_SESSIONS (1000: sessions whose state is kept),
EMOCLIP_LOG_LEVEL=debug (as ``--verbose``: show native libraries' log lines and gradio's
start-up messages). The analysis's own variables (``EMOCLIP_PRECISION``, face thresholds, threads:
`emoclip.settings.AnalysisSettings`) are read by `analysis` when a predictor is made; where models
are looked for (``EMOCLIP_WEIGHTS``, ``EMOCLIP_WEIGHTS_DIR``, ``EMOCLIP_HUB_REPO`` /
``EMOCLIP_HUB_REVISION``, ``EMOCLIP_TINY_HUB_REPO`` / ``EMOCLIP_TINY_HUB_REVISION``:
`emoclip.settings.ModelLocations`) by `locations` when the model manager is made.

Paths are relative to the repository (the folder holding ``app.py``, ``assets/`` and
``weights/``): the parent of this package in a checkout or a Space, else (an installed wheel)
the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from emoclip.classes import Limits
from emoclip.settings import AnalysisSettings, ModelLocations


def env_float(name: str, default: float | None) -> float | None:
    """A float from the environment; empty, 0 or "none" means unlimited (None)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() in ("none", "0", "inf", "unlimited"):
        return None
    return float(raw)


def env_flag(name: str) -> bool:
    """Whether an environment variable is set to something other than "", "0" or "false"."""
    return os.environ.get(name, "") not in ("", "0", "false")


_CHECKOUT = Path(__file__).resolve().parent.parent
# The repository (app.py, assets/, weights/); for an installed wheel, the working directory.
HERE = _CHECKOUT if (_CHECKOUT / "app.py").is_file() else Path.cwd()
ASSETS = HERE / "assets"
WEIGHTS = HERE / "weights"
EXAMPLES = sorted([*ASSETS.glob("*.webm"), *ASSETS.glob("*.mp4")])
MAX_UPLOAD_MB = env_float("EMOCLIP_MAX_UPLOAD_MB", 200.0)
MAX_SECONDS = env_float("EMOCLIP_MAX_SECONDS", 600.0)
MAX_MEGAPIXELS = env_float("EMOCLIP_MAX_MEGAPIXELS", 9.0)
CLASS_LIMITS = Limits(max_classes=int(env_float("EMOCLIP_MAX_CLASSES", 64) or 64))
LIVE_SECONDS = int(env_float("EMOCLIP_LIVE_SECONDS", 120) or 120)
FILES_SECONDS = env_float("EMOCLIP_FILES_SECONDS", 3600.0)
MAX_SESSIONS = int(env_float("EMOCLIP_SESSIONS", 1000) or 1000)
QUEUE = dict(
    default_concurrency_limit=int(env_float("EMOCLIP_CONCURRENCY", 2) or 2),
    max_size=int(env_float("EMOCLIP_QUEUE_SIZE", 32) or 32),
)
MODEL_DEFAULT_PRESET = "(the model's default)"
MAX_SESSION_CLIPS = 50
MAX_COLLECTION_CLIPS = int(env_float("EMOCLIP_MAX_COLLECTION_CLIPS", 50_000) or 1_000_000)
MAX_RESULT_PARTS = 64  # Parquet part files of one results-folder upload
MAX_DRAWN_POINTS = 5000  # results-folder clips drawn in the explorer (SVG markers)
MODEL_WAIT_SECONDS = 120.0  # a handler waits this long for the first model
PAGE_WAIT_SECONDS = 15.0  # the page-load event waits this long, then the timer takes over
TEST_MODEL_OFFERED = env_flag("EMOCLIP_APP_TEST_MODEL")
FORCED_MODEL = os.environ.get("EMOCLIP_APP_MODEL") or None
DEVICE = os.environ.get("EMOCLIP_DEVICE", "cpu")
VIDEO_LIMITS = dict(
    max_bytes=None if MAX_UPLOAD_MB is None else int(MAX_UPLOAD_MB * 1e6),
    max_duration=MAX_SECONDS,
    max_pixels=None if MAX_MEGAPIXELS is None else int(MAX_MEGAPIXELS * 1e6),
)


def analysis() -> AnalysisSettings:
    """The analysis settings of this app's predictors: ``EMOCLIP_*`` variables read now (the app's
    own limits and fallback are applied on top by `models.ModelManager.predictor`)."""
    return AnalysisSettings.from_env(os.environ)


def locations() -> ModelLocations:
    """Where this app's models are looked for: the ``EMOCLIP_WEIGHTS*`` and ``EMOCLIP_*HUB_*``
    variables, read now (`emoclip.settings.ModelLocations.from_env`)."""
    return ModelLocations.from_env(os.environ)


def short(text: str) -> str:
    """Paths inside the app's folder shown relative to it."""
    return text.replace(f"{HERE}{os.sep}", "")
