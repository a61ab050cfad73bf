"""Where and with what a result was made: versions, device, time, arguments."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import torch

from gradbench.extend import plugins

SCHEMA_VERSION = 1


def gradbench_version() -> str:
    return version("gradbench")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name where the OS tells it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def provenance(
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
    n_samples: int | None,
    arguments: dict | None = None,
) -> dict:
    """The run-level record saved with every result; ``arguments`` as the caller gave them."""
    return {
        "schema_version": SCHEMA_VERSION,
        "gradbench_version": gradbench_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "seed": seed,
        "n_samples": n_samples,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "arguments": arguments or {},
        "plugins": plugins.loaded(),
    }
