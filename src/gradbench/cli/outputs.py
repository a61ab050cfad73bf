"""Output files of a command: checked before any work is done, written atomically after it,
and the flow every measuring command ends with (show, warn, write, report an interruption)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import typer
from rich.console import RenderableType

from gradbench.cli.console import INTERRUPTED, RUNTIME_ERROR, error, note, stdout, warn
from gradbench.core.errors import InputError
from gradbench.report.plot import figure_format, require_matplotlib

#: Writes one output file, by its flag.
Writer = Callable[[Path], None]


def check_output(path: Path | None, flag: str, overwrite: bool) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{flag} {str(path)!r} is a directory; give a file path")
    if path.exists() and not overwrite:
        raise InputError(f"{flag} {str(path)!r} exists; pass --overwrite to replace it")
    if not parent.is_dir():
        raise InputError(f"{flag} {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{flag} {str(path)!r}: not writable")


def check_figure(path: Path | None, flag: str, overwrite: bool) -> None:
    """Refuse a figure path that cannot be written, or plotting without matplotlib, up front."""
    if path is not None:
        figure_format(path, flag)
        check_output(path, flag, overwrite)
        require_matplotlib()


def checked_outputs(
    tables: dict[str, Path | None], plot: Path | None, overwrite: bool
) -> dict[str, Path | None]:
    """The output files by flag, tables and ``--plot``, each checked before anything runs."""
    for flag, path in tables.items():
        check_output(path, flag, overwrite)
    check_figure(plot, "--plot", overwrite)
    return {**tables, "--plot": plot}


def write_outputs(
    writers: dict[str, Writer], outputs: dict[str, Path | None], interrupted: bool
) -> None:
    """Write each requested file (keyed by its flag), each atomically. An interrupted run may
    have nothing to draw yet: its figure is then skipped with a warning, not an error."""
    for flag, path in outputs.items():
        if path is None:
            continue
        try:
            writers[flag](path)
        except InputError as problem:
            if not (interrupted and flag == "--plot"):
                raise
            warn(f"{flag} {path} not written: {problem}")
            continue
        note(f"wrote {path}")


def finish(
    view: RenderableType,
    messages: Iterable[str],
    writers: dict[str, Writer],
    outputs: dict[str, Path | None],
    interrupted: str | None,
    failed: bool = False,
) -> None:
    """Show the result and its messages (on stderr), write every requested file, then stop
    with status 130 when the run was interrupted (``interrupted`` says what was kept), or 1
    when a file could not be written or a pair ``failed``."""
    stdout().print(view)
    for line in messages:
        note(line)
    try:
        write_outputs(writers, outputs, interrupted is not None)
    except (OSError, InputError) as problem:
        error(f"could not write output: {problem}")
        raise typer.Exit(RUNTIME_ERROR) from None
    if interrupted is not None:
        error(f"interrupted: {interrupted}")
        raise typer.Exit(INTERRUPTED)
    if failed:
        raise typer.Exit(RUNTIME_ERROR)


def written(outputs: dict[str, Path | None]) -> str:
    """`` and in a.csv, b.json`` for the requested files; empty when there are none."""
    paths = [str(path) for path in outputs.values() if path is not None]
    return f" and in {', '.join(paths)}" if paths else ""
