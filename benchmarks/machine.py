"""The machine a run measured on and the load it competed with: CPU, memory, library versions,
thread pools (`machine_info`), the load average (`loadavg`) and the busiest other processes."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def busy_processes(limit: int = 5) -> list[str]:
    """Other processes using CPU right now (the load this run competed with), from `ps`."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return []
    me = os.getpid()
    rows = []
    for line in out:
        parts = line.split(None, 2)
        if len(parts) == 3 and int(parts[0]) != me and float(parts[1]) >= 20.0:
            rows.append(f"{parts[2]} ({parts[1]}% CPU)")
    return rows[:limit]


def machine_info() -> dict[str, Any]:
    import torch

    from emoclip.inference.linear_ops import backend_unavailable_reason
    from emoclip.inference.tower_cache import read_cpu_info

    info = read_cpu_info()
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    blas = []
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_info

        blas = [
            {k: d.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
            for d in threadpool_info()
        ]
    return {
        "cpu": info.model,
        "logical_cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "native_bf16": info.native_bf16,
        "isa": info.isa(),  # the flags the candidate towers can use (avx512_bf16, amx_bf16, ...)
        "onednn_linear": backend_unavailable_reason("onednn") or "available",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy": np.__version__,
        "threadpools": blas,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "ffmpeg": shutil.which("ffmpeg") is not None,
    }
