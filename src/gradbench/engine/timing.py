"""Wall time per estimate: device-synchronised, after warm-up, median over repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: A repeat shorter than this many timer ticks is flagged as below the timer's resolution.
MIN_TICKS = 1000


@dataclass(frozen=True)
class Timing:
    """Seconds per estimate: median, min and max over ``repeats`` calls of ``batch`` estimates."""

    per_sample_s: float
    min_per_sample_s: float
    max_per_sample_s: float
    repeats: int
    batch: int
    below_resolution: bool


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_sample(
    produce: Callable[[], object], batch: int, repeats: int, device: torch.device
) -> Timing:
    """Call ``produce()`` (``batch`` estimates) once to warm up, then time ``repeats`` calls."""
    produce()
    synchronize(device)
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        produce()
        synchronize(device)
        walls.append(time.perf_counter() - start)
    resolution = time.get_clock_info("perf_counter").resolution
    return Timing(
        per_sample_s=statistics.median(walls) / batch,
        min_per_sample_s=min(walls) / batch,
        max_per_sample_s=max(walls) / batch,
        repeats=repeats,
        batch=batch,
        below_resolution=min(walls) < MIN_TICKS * resolution,
    )
