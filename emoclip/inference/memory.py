"""Resident memory of weights that are memory-mapped from their checkpoint file.

`emoclip.weights.factory` loads a ``.safetensors`` checkpoint with its tensors left in the file's
private (copy-on-write) memory map, so a weight costs resident memory only once it is read.
Once the inference fast paths hold their own copies (the bf16 image tower, the folded temporal
model), `release_file_pages` hands the original weights' pages back to the kernel. Nothing is
lost and nothing breaks: the tensors stay valid, and reading them again (the model used directly,
an fp32 predictor, a state dict) pages them back in from the file; the bytes are the file's,
unchanged. Pages written since loading (weights edited in place) are never released: a tensor
with such a page is left as it is.

Linux only (``/proc/self/maps``, ``/proc/self/pagemap``, ``madvise``); elsewhere nothing is
released and `resident_bytes` returns None.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from collections.abc import Iterable

import torch

_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4
_PRESENT, _FILE_PAGE = 1 << 63, 1 << 61  # /proc/self/pagemap entry bits


def _storages(tensors: Iterable[torch.Tensor]) -> list[tuple[int, int]]:
    """Distinct (address, bytes) of the memory of contiguous CPU `tensors` (their own bytes, not
    the whole storage they may be a view of)."""
    seen: dict[int, int] = {}  # data_ptr -> bytes
    for t in tensors:
        if t.device.type != "cpu" or t.is_sparse or t.is_meta or not t.is_contiguous():
            continue
        nbytes = t.numel() * t.element_size()
        if nbytes:
            seen[t.data_ptr()] = max(nbytes, seen.get(t.data_ptr(), 0))
    return sorted(seen.items())


def private_file_maps() -> list[tuple[int, int]]:
    """(start, end) of this process's private mappings of regular files."""
    out = []
    with open("/proc/self/maps", encoding="ascii", errors="replace") as fh:
        for line in fh:
            parts = line.split(None, 5)
            if (
                len(parts) < 6
                or parts[1][3] != "p"
                or parts[4] == "0"
                or not parts[5].startswith("/")
            ):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end))
    return out


def _page_flags(fh, first_page: int, pages: int) -> list[int]:
    fh.seek(first_page * 8)
    data = fh.read(pages * 8)
    return [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]


def _inner_pages(addr: int, nbytes: int) -> tuple[int, int]:
    """First page and page count lying wholly inside [addr, addr + nbytes)."""
    first = -(-addr // _PAGE)
    last = (addr + nbytes) // _PAGE
    return first, max(0, last - first)


def release_file_pages(tensors: Iterable[torch.Tensor]) -> int:
    """Drop the resident pages of tensors that are clean pages of a private file mapping.

    A contiguous tensor qualifies when its bytes lie in one private mapping of a file (a checkpoint
    loaded by memory-mapping) and none of its pages was written since (a written page is an
    anonymous copy whose content only memory holds). Its pages are then released with
    ``madvise(MADV_DONTNEED)``: the next read of the tensor pages the file back in, unchanged.
    Other tensors (allocated in memory, edited in place, not on the CPU) are left as they are.

    Returns:
        Bytes released (0 off Linux or when nothing qualifies).
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        maps = private_file_maps()
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        pagemap = open("/proc/self/pagemap", "rb")
    except (OSError, AttributeError):
        return 0
    released = 0
    with pagemap:
        for addr, nbytes in _storages(tensors):
            if not any(start <= addr and addr + nbytes <= end for start, end in maps):
                continue
            first, pages = _inner_pages(addr, nbytes)
            if not pages:
                continue
            flags = _page_flags(pagemap, first, pages)
            if len(flags) != pages or any(f & _PRESENT and not f & _FILE_PAGE for f in flags):
                continue  # a page was written (now anonymous memory): releasing it would lose the edit
            if madvise(first * _PAGE, pages * _PAGE, _MADV_DONTNEED) == 0:
                released += sum(_PAGE for f in flags if f & _PRESENT)
    return released


def resident_bytes(tensors: Iterable[torch.Tensor]) -> int | None:
    """Bytes of contiguous CPU `tensors` resident in memory now (whole pages inside each tensor),
    or None when it cannot be read (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        pagemap = open("/proc/self/pagemap", "rb")
    except OSError:
        return None
    total = 0
    with pagemap:
        for addr, nbytes in _storages(tensors):
            first, pages = _inner_pages(addr, nbytes)
            if pages:
                total += _PAGE * sum(1 for f in _page_flags(pagemap, first, pages) if f & _PRESENT)
    return total
