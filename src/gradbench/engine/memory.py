"""How much working memory a chunk of estimates may use on a device.

The budget is a fixed default per device type (so that the chunk size, and with it the random
draws, are the same from run to run), lowered to half the memory the device has free when that
is less. An explicit budget or chunk size overrides both.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

#: Default working memory of a chunk per device type, in bytes.
DEFAULT_BUDGET = {"cpu": 256 * 2**20, "cuda": 4 * 2**30}
#: Never plan to use more than this fraction of the free memory.
FREE_FRACTION = 0.5


#: From this size on, a host allocation gets pages of its own (see :func:`unmap_large_blocks`).
MMAP_THRESHOLD = 4 * 2**20
#: mallopt's parameter number of the threshold (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3


def unmap_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have the C library map every host allocation of ``threshold`` bytes or more by itself
    and unmap it when it is freed (glibc's ``mallopt(M_MMAP_THRESHOLD)``), so that the
    process's resident memory follows what it holds; whether that took effect (False where
    the C library is not glibc).

    By default glibc raises that threshold, up to 32 MiB, whenever a mapped block is freed,
    and from then on serves blocks below it from its heap, whose freed pages it keeps: a run
    of chunks whose arrays are 4–32 MiB then holds memory it no longer uses (a default
    ``gradbench compare`` peaked at 757 MB that way and at 584 MB with this, the same numbers:
    docs/performance.md). Process-wide, so the command line sets it, not the library."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def free_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` (CUDA: the driver's count; CPU: MemAvailable), if known."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if device.type == "cpu" and meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def chunk_budget(device: torch.device, requested: int | None = None) -> int:
    """Bytes a chunk may use: ``requested`` or the device default, capped by free memory."""
    budget = requested or DEFAULT_BUDGET.get(device.type, DEFAULT_BUDGET["cpu"])
    free = free_bytes(device)
    return budget if free is None else max(1, min(budget, int(free * FREE_FRACTION)))


def describe_bytes(count: float) -> str:
    """``count`` bytes in KiB, MiB or GiB, three significant figures."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"
