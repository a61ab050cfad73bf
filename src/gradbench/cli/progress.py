"""One progress bar for every long command, on stderr and only when stderr is a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: ``update(finished, total, label)``: ``total`` None while unknown.
Update = Callable[[int, int | None, str], None]


@contextmanager
def progress(description: str) -> Iterator[Update]:
    """A bar labelled ``description``; the block calls the yielded ``update`` as work finishes."""
    stderr = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    bar = Progress(
        *columns,
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=None)

        def update(finished: int, total: int | None, label: str) -> None:
            bar.update(task, completed=finished, total=total, description=label or description)

        yield update
