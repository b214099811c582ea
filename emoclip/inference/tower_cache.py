"""Where a machine's image-tower choice is remembered: one small JSON file per key.

The key (`choice_key`) covers everything the choice depends on: the image tower's weights
(sha256), the torch, open_clip and emoclip versions and the fast tower's format (`TOWER_FORMAT`),
the CPU model and its flags, the requested precision and the predictor's batch and thread layout.
Any change gives a new key, hence a new measurement; a file that cannot be read or does not hold
a valid record is reported with a warning, removed and measured again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger("emoclip.inference.tower")

TOWER_FORMAT = 1  # bump when a candidate's implementation changes what it computes or costs
RECORD_FIELDS = ("choice", "precision", "frames_per_s", "failures", "seconds")


def default_cache_dir() -> Path:
    """``~/.cache/emoclip/tower``: where choices are kept unless a folder is given."""
    return Path.home() / ".cache" / "emoclip" / "tower"


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as ``/proc/cpuinfo`` reports it (model name and the first processor's flags)."""

    model: str
    flags: tuple[str, ...]

    def has(self, *any_of: str) -> bool:
        """Whether the CPU has at least one of the flags `any_of`."""
        return bool(set(any_of) & set(self.flags))

    @property
    def native_bf16(self) -> bool:
        """bfloat16 arithmetic in hardware: AVX512-BF16 or AMX-BF16."""
        return self.has("avx512_bf16", "amx_bf16")

    def isa(self) -> list[str]:
        """The flags that matter to the towers, present on this CPU."""
        wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
        return [f for f in wanted if f in self.flags]


def read_cpu_info(path: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """This machine's `CpuInfo` (``platform``'s processor name and no flags where `path` is
    unreadable; ``Features`` stands for ``flags`` on ARM)."""
    model, flags = "", ""
    try:
        with open(path, encoding="ascii", errors="ignore") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value
    except OSError:
        pass
    return CpuInfo(
        model or platform.processor() or platform.machine(), tuple(sorted(flags.split()))
    )


def weights_sha256(visual: nn.Module) -> str:
    """sha256 of the image tower's tensors (names, shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for name, t in sorted(visual.state_dict().items()):
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_weights_sha256(visual: nn.Module, source: str | None) -> str:
    """The key's weights digest: the checkpoint's recorded sha256 when the tower is as loaded from
    `source` (a ``.safetensors`` file whose sidecar records one; verified when it was loaded), so
    a warm start hashes nothing; else `weights_sha256` of the tower's tensors."""
    path = Path(source) if source else None
    if path is not None and path.suffix == ".safetensors" and path.is_file():
        unedited = all(p._version == 0 for p in visual.parameters())
        try:
            from emoclip.weights.files import sidecar_path

            recorded = json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError):
            recorded = None
        if unedited and isinstance(recorded, str) and len(recorded) == 64:
            return f"file:{recorded}"
    return weights_sha256(visual)


def choice_key(
    weights: str, cpu: CpuInfo, *, precision: str, batch: int, workers: int, threads: int | None
) -> dict[str, Any]:
    """Everything a cached choice depends on (see the module docstring)."""
    import open_clip

    from emoclip.version import __version__

    return {
        "weights_sha256": weights,
        "torch": torch.__version__,
        "open_clip": getattr(open_clip, "__version__", "?"),
        "emoclip": __version__,
        "tower_format": TOWER_FORMAT,
        "cpu": cpu.model,
        "cpu_flags": " ".join(cpu.flags),
        "precision": precision,
        "batch": batch,
        "workers": workers,
        "threads": threads,
    }


class ChoiceCache:
    """Choices on disk: ``<folder>/<sha256 of the key>.json`` holding the key and the record."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: dict[str, Any]) -> Path:
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def load(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The record stored under `key`, or None (nothing stored, or a corrupt file: warned
        about and removed)."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("image-tower choice %s unreadable (%s): measuring again", path, exc)
            return None
        try:
            data = json.loads(text)
            record = data["record"]
            if data["key"] != key or not all(f in record for f in RECORD_FIELDS):
                raise ValueError("key or fields differ")
            if not isinstance(record["choice"], str):
                raise ValueError("choice is not a name")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning(
                "image-tower choice %s is corrupt (%s): ignored, measuring again", path, exc
            )
            path.unlink(missing_ok=True)
            return None
        return dict(record)

    def save(self, key: dict[str, Any], record: dict[str, Any]) -> Path | None:
        """Store `record` under `key` atomically; the path, or None when the folder is not
        writable (warned about: the choice then lasts for this process only)."""
        path = self.path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"key": key, "record": record}, fh, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("image-tower choice not saved in %s (%s)", self.folder, exc)
            return None
        return path
