"""Progress of every long command, on stderr: a bar with the total and the time left on a
terminal, plain rate-limited lines elsewhere (a log, CI), and one line up front when the run
will be long.

Time left is extrapolated from the pace so far (work done per second), so it is rough while
pairs of very different cost remain; it is always labelled "about".
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: ``update(done, total, label)``: units done (a fraction for the one running) of ``total``.
Update = Callable[[float, int | None, str], None]

#: Seconds between two plain progress lines.
LINE_INTERVAL_S = 10.0
#: A run projected to take longer than this is announced once, with its estimate.
LONG_RUN_S = 60.0
#: Work done before the first projection, so one fast first chunk does not set it alone.
FIRST_PROJECTION_AFTER_S = 0.5


def describe_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 5 min``, ``3.1 days``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds / 86400:.2g} days"


class _Pace:
    """Elapsed time and the projection of what is left, from the work done so far."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.started = time.monotonic()
        self.announced = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self, done: float, total: int | None) -> float:
        """Seconds left at the pace so far; NaN while nothing is done or the total is unknown."""
        if total is None or done <= 0:
            return math.nan
        return self.elapsed() * (total - done) / done

    def announcement(self, done: float, total: int | None) -> str:
        """The one line that says a run will be long, the first time the projection says so."""
        left = self.left(done, total)
        if self.announced or math.isnan(left) or self.elapsed() < FIRST_PROJECTION_AFTER_S:
            return ""
        if self.elapsed() + left < LONG_RUN_S:
            return ""
        self.announced = True
        return (
            f"gradbench: this run will take about {describe_seconds(self.elapsed() + left)} at"
            f" its pace so far ({total} {self.unit}); Ctrl-C keeps what finished"
        )


@contextmanager
def progress(description: str, unit: str) -> Iterator[Update]:
    """Progress of work counted in ``unit`` (``pairs``, ``tasks``); the block calls the
    yielded ``update`` as work finishes."""
    stderr = Console(stderr=True)
    pace = _Pace(unit)
    if not stderr.is_terminal:
        yield _plain_lines(description, pace)
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=None)

        def update(done: float, total: int | None, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label or description)
            if line := pace.announcement(done, total):
                bar.console.print(line, highlight=False)

        yield update


def _plain_lines(description: str, pace: _Pace) -> Update:
    """An ``update`` that prints a line at most every :data:`LINE_INTERVAL_S` seconds."""
    last = -math.inf

    def update(done: float, total: int | None, label: str) -> None:
        nonlocal last
        if line := pace.announcement(done, total):
            print(line, file=sys.stderr, flush=True)
        now = pace.elapsed()
        if now - last < LINE_INTERVAL_S or now < LINE_INTERVAL_S:
            return
        last = now
        of = f"/{total}" if total is not None else ""
        left = pace.left(done, total)
        remaining = "" if math.isnan(left) else f", about {describe_seconds(left)} left"
        print(
            f"gradbench: {description} {math.floor(done)}{of} {pace.unit},"
            f" {describe_seconds(now)} elapsed{remaining}" + (f": {label}" if label else ""),
            file=sys.stderr,
            flush=True,
        )

    return update
