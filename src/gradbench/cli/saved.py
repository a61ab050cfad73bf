"""``gradbench plot`` and ``gradbench report``: views of a result saved by ``compare`` or
``sweep``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from gradbench.cli import options
from gradbench.cli.app import app
from gradbench.cli.console import RUNTIME_ERROR, USAGE_ERROR, error, note, stdout
from gradbench.cli.outputs import check_figure, check_output
from gradbench.cli.plugins import load_plugins
from gradbench.core.errors import InputError
from gradbench.records.files import write_atomic
from gradbench.records.stored import read_result
from gradbench.report.figure.build import figure_data
from gradbench.report.plot import write_figure
from gradbench.report.tables import markdown_table, rich_table


@app.command("plot")
def plot_command(
    results: options.Results,
    out: Annotated[
        Path,
        typer.Option("-o", "--out", metavar="PATH", help="The figure to write: .png or .svg."),
    ],
    detail: Annotated[
        Path | None,
        typer.Option(
            metavar="DETAIL",
            help="The same run's per-coordinate table (its --detail-csv, or its JSON): one"
            " variance panel per coordinate, e.g. ∂/∂mu[0] and ∂/∂sigma[0].",
        ),
    ] = None,
    x: Annotated[
        str | None,
        typer.Option(
            "--x",
            metavar="PARAM",
            help="The swept parameter on the x axis (default: the first that varies).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the figure if it exists.")
    ] = False,
    plugin: options.Plugins = None,
) -> None:
    """Draw a result: variance (log scale) against the swept parameter, one line per estimator
    with its interval band and the exact variance where known, with bias and time panels; for a
    comparison without a sweep, one point per estimator."""
    load_plugins(plugin)
    try:
        check_figure(out, "--out", overwrite)
        data = figure_data(read_result(results, detail), x)
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None
    for line in data.notes:
        note(f"note: {line}")
    _write(out, lambda: write_figure(data, out))


@app.command()
def report(
    results: options.Results,
    markdown: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH", help="Write the table as Markdown, as compare --markdown writes it."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the Markdown file if it exists.")
    ] = False,
) -> None:
    """Show a saved result's table, in the terminal or as Markdown (--markdown PATH)."""
    try:
        check_output(markdown, "--markdown", overwrite)
        table = read_result(results).table
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None
    if markdown is None:
        stdout().print(rich_table(table))
        return
    _write(markdown, lambda: write_atomic(markdown, markdown_table(table)))


def _write(path: Path, write: Callable[[], None]) -> None:
    """Run ``write`` (a callable writing ``path``); an OS error is one line and status 1."""
    try:
        write()
    except OSError as problem:
        error(f"could not write {path}: {problem}")
        raise typer.Exit(RUNTIME_ERROR) from None
    note(f"wrote {path}")
