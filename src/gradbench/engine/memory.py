"""How much working memory a chunk of estimates may use on a device.

The budget is a fixed default per device type (so that the chunk size, and with it the random
draws, are the same from run to run), lowered to half the memory the device has free when that
is less. An explicit budget or chunk size overrides both.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Default working memory of a chunk per device type, in bytes.
DEFAULT_BUDGET = {"cpu": 256 * 2**20, "cuda": 4 * 2**30}
#: Never plan to use more than this fraction of the free memory.
FREE_FRACTION = 0.5


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
