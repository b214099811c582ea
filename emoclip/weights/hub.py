"""Hugging Face Hub access that never hangs: offline detection, cache look-ups, downloads.

huggingface_hub retries for ~23 s per file when the Hub cannot be reached, so before any
download we decide, in at most ``PROBE_TIMEOUT`` seconds, whether the Hub is reachable at all.
``HF_HUB_OFFLINE=1`` skips the probe. Cached files are found without any network access.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PROBE_TIMEOUT = 1.5  # seconds for the TCP connect to the Hub endpoint
_PROBE_TTL = 60.0  # seconds a probe result is reused
_probe: tuple[float, bool, str] | None = None  # (when, online, reason); a process-wide fact


def _env_offline() -> bool:
    import huggingface_hub.constants as hf_constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return flag or bool(hf_constants.HF_HUB_OFFLINE)


def endpoint() -> str:
    """The Hub endpoint in use (``HF_ENDPOINT`` or huggingface.co)."""
    import huggingface_hub.constants as hf_constants

    return os.environ.get("HF_ENDPOINT") or hf_constants.ENDPOINT


def hub_online(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the Hub endpoint accepts a TCP connection (False at once when HF_HUB_OFFLINE)."""
    global _probe
    if _env_offline():
        return False
    now = time.monotonic()
    if _probe is not None and now - _probe[0] < _PROBE_TTL:
        return _probe[1]
    url = urlparse(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            online, reason = True, ""
    except OSError as exc:
        online, reason = False, f"cannot reach {url.hostname}:{port}: {exc.__class__.__name__}"
    _probe = (now, online, reason)
    return online


def offline_reason() -> str:
    """Why the Hub counts as unreachable, for error messages."""
    if _env_offline():
        return "HF_HUB_OFFLINE is set"
    if _probe is not None and not _probe[1]:
        return _probe[2]
    return "no connection"


def reset_probe() -> None:
    """Forget the cached reachability result (tests, or after the network changes)."""
    global _probe
    _probe = None


def cached_file(
    repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path | None:
    """Path of `filename` from `repo_id` in the local Hub cache, or None. No network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return Path(found) if isinstance(found, str) else None


def download_file(
    repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """`filename` from `repo_id`: the cached copy, else a download into the Hub cache.

    Raises:
        FileNotFoundError: not cached and the Hub is unreachable, or the download failed.
    """
    found = cached_file(repo_id, filename, revision=revision, cache_dir=cache_dir)
    if found is not None:
        return found
    if not hub_online():
        raise FileNotFoundError(
            f"{repo_id}/{filename} is not in the Hub cache and the Hub is unreachable "
            f"({offline_reason()})"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir))
    except Exception as exc:  # huggingface_hub raises many kinds; report them all the same way
        raise FileNotFoundError(f"could not download {repo_id}/{filename}: {exc}") from exc


def cached_open_clip_file(
    pcfg: dict[str, Any], *, cache_dir: str | Path | None = None
) -> Path | None:
    """Cached weights file of an open_clip pretrained config (safetensors preferred), or None."""
    hf_hub = pcfg.get("hf_hub") or ""
    if not hf_hub:
        return None
    repo_id, filename = os.path.split(hf_hub)  # "org/name/" (default file) or "org/name/file"
    names = (
        [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    )
    if filename.endswith(".bin"):
        names.insert(0, filename[: -len(".bin")] + ".safetensors")
    for name in names:
        found = cached_file(repo_id, name, cache_dir=cache_dir)
        if found is not None:
            return found
    return None
