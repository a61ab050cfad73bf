"""Wall time per estimate: device-synchronised, after warm-up, median over repeats.

Repeats come from the measuring pass itself where it has enough chunks (:class:`ChunkClock`:
the estimates' call of each chunk, timed with ``perf_counter`` on the CPU and with CUDA events
on a GPU, so the loop never waits for the device), or from repeated calls of a batch
(:func:`time_per_sample`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

#: A repeat shorter than this many timer ticks is flagged as below the timer's resolution.
MIN_TICKS = 1000
#: pyperf's check of repeated timings ("the maximum is 50% greater than the mean"), in terms of
#: what a result keeps (median, fastest and slowest repeat): a repeat more than this fraction
#: away from the median means the machine was busy while the pair was timed.
FAR_FROM_MEDIAN = 0.5
#: The start of an unstable timing's warning, by which views group them.
UNSTABLE = "timing unstable"


@dataclass(frozen=True)
class Timing:
    """Seconds per estimate: median, min and max over ``repeats`` calls of ``batch`` estimates."""

    per_sample_s: float
    min_per_sample_s: float
    max_per_sample_s: float
    repeats: int
    batch: int
    below_resolution: bool


def instability(median: float, fastest: float, slowest: float) -> str:
    """Why repeats with this median, fastest and slowest time are not to be trusted, or ``""``
    when they are stable (or undefined: NaN)."""
    if not median > 0:
        return ""
    if slowest > (1 + FAR_FROM_MEDIAN) * median:
        return f"the slowest repeat took {slowest / median:.2g}× the median"
    if fastest < (1 - FAR_FROM_MEDIAN) * median:
        return f"the fastest repeat took {fastest / median:.2g}× the median"
    return ""


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
    return timing_of_walls(walls, batch)


class ChunkClock:
    """The time of each chunk's estimates in a measuring pass, read only after the pass."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._chunks: list[tuple[int, object, object]] = []  # rows, start, stop

    @contextmanager
    def timing(self, rows: int) -> Iterator[None]:
        """Time the block (the estimates of one chunk of ``rows``)."""
        if self.device.type == "cuda":
            start, stop = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            start.record()
            yield
            stop.record()
        else:
            start = time.perf_counter()
            yield
            stop = time.perf_counter()
        self._chunks.append((rows, start, stop))

    def forget(self) -> None:
        """Drop what was timed (a chunk size that did not fit changes the calls)."""
        self._chunks.clear()

    def timing_of(self, chunk: int, repeats: int) -> Timing | None:
        """Median, fastest and slowest seconds per estimate over ``repeats`` whole chunks of
        ``chunk`` rows, evenly spaced over the pass after its first (the warm-up); None with
        fewer. A fixed number of repeats keeps the fastest and slowest comparable with those
        of :func:`time_per_sample` (more repeats would widen the range by themselves)."""
        whole = [(start, stop) for rows, start, stop in self._chunks[1:] if rows == chunk]
        if len(whole) < max(repeats, 1):
            return None
        step = (len(whole) - 1) / max(repeats - 1, 1)
        chosen = [whole[round(i * step)] for i in range(repeats)]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # once, after the pass
            walls = [start.elapsed_time(stop) / 1000 for start, stop in chosen]  # type: ignore[attr-defined]
            return timing_of_walls(walls, chunk, resolution=1e-6)  # events: 0.5 µs
        return timing_of_walls([stop - start for start, stop in chosen], chunk)  # type: ignore[operator]


def timing_of_walls(walls: list[float], batch: int, resolution: float | None = None) -> Timing:
    """The :class:`Timing` of calls of ``batch`` estimates that took ``walls`` seconds each;
    ``resolution`` of the clock (default: ``perf_counter``'s)."""
    tick = time.get_clock_info("perf_counter").resolution if resolution is None else resolution
    return Timing(
        per_sample_s=statistics.median(walls) / batch,
        min_per_sample_s=min(walls) / batch,
        max_per_sample_s=max(walls) / batch,
        repeats=len(walls),
        batch=batch,
        below_resolution=min(walls) < MIN_TICKS * tick,
    )


def timing_warning(timing: Timing) -> str:
    """The warning of an unstable timing, with what helps; ``""`` when it is stable."""
    why = instability(timing.per_sample_s, timing.min_per_sample_s, timing.max_per_sample_s)
    if not why:
        return ""
    return f"{UNSTABLE} ({why}): no ★ rests on it; rerun on an idle machine"
