"""``gradbench plot`` and ``gradbench report``: views of a result saved by ``compare`` or
``sweep``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gradbench.cli import options
from gradbench.cli.app import app
from gradbench.cli.console import RUNTIME_ERROR, USAGE_ERROR, error, note, stdout
from gradbench.cli.outputs import check_figure, check_output
from gradbench.cli.plugins import load_plugins
from gradbench.core.errors import InputError
from gradbench.records.files import write_atomic
from gradbench.report.plot import write_figure

if TYPE_CHECKING:
    from gradbench.records.difference import Difference


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
            " variance panel per coordinate, e.g. ∂/∂mu[0] and ∂/∂sigma[0]; for a train"
            " result, its --basket-csv.",
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
    comparison without a sweep, one point per estimator. A train result (its --csv, with its
    --basket-csv as --detail, or its JSON) draws J by step and by second and the basket's
    variance."""
    from gradbench.records.stored import read_result
    from gradbench.records.training import is_training_result, read_training
    from gradbench.report.figure.build import figure_data
    from gradbench.report.training_plot import write_training_figure

    load_plugins(plugin)
    if is_training_result(results):
        try:
            check_figure(out, "--out", overwrite)
            table, basket = read_training(results, detail)
        except InputError as problem:
            error(str(problem))
            raise typer.Exit(USAGE_ERROR) from None
        _write(out, lambda: write_training_figure(table, basket, out))
        return
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
    other: Annotated[
        Path | None,
        typer.Argument(
            metavar="RESULTS_B",
            help="A second saved result, B: compare RESULTS (A, the baseline) with it pair by"
            " pair instead: the variance ratio B/A with its 95% interval, the time ratio B/A,"
            " whether each changed significantly, and bias verdicts that changed.",
            show_default=False,
        ),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Write the table as Markdown, as compare --markdown writes it (with RESULTS_B,"
            " the comparison).",
        ),
    ] = None,
    columns: options.ColumnNames = None,
    wide: options.Wide = False,
    sort: options.Sort = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the Markdown file if it exists.")
    ] = False,
) -> None:
    """Show a saved result's table, in the terminal or as Markdown (--markdown PATH); with a
    second result, compare the two pair by pair (rows matched on objective, estimator,
    settings, options, sweep axes and replicate), as pytest-benchmark compare does."""
    from gradbench.records.difference import compare_results
    from gradbench.records.stored import read_result
    from gradbench.report.view import ViewOptions, markdown_view, terminal_view

    try:
        view = ViewOptions(options.column_names(columns), wide, sort)
        if other is not None and view != ViewOptions():
            raise InputError(
                "--columns, --wide and --sort choose the view of one result; the comparison of"
                " two (RESULTS RESULTS_B) has its own columns"
            )
        check_output(markdown, "--markdown", overwrite)
        first = read_result(results)
        difference = None if other is None else compare_results(first, read_result(other))
        shown = terminal_view(first.table, view) if markdown is None and other is None else None
        text = markdown_view(first.table, view) if markdown is not None and other is None else ""
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None
    if difference is not None:
        _report_difference(difference, markdown)
    elif markdown is None:
        stdout().print(shown)
    else:
        _write(markdown, lambda: write_atomic(markdown, text))


def _report_difference(difference: Difference, markdown: Path | None) -> None:
    """Print the comparison of two results (table, then its note lines), or write it as
    Markdown."""
    from gradbench.report import difference as views

    if markdown is None:
        console = stdout()
        console.print(views.rich_table(difference))
        for line in views.note_lines(difference):
            console.print(line, markup=False, highlight=False)
        return
    _write(markdown, lambda: write_atomic(markdown, views.markdown_table(difference)))


def _write(path: Path, write: Callable[[], None]) -> None:
    """Run ``write`` (a callable writing ``path``); an OS error is one line and status 1."""
    try:
        write()
    except OSError as problem:
        error(f"could not write {path}: {problem}")
        raise typer.Exit(RUNTIME_ERROR) from None
    note(f"wrote {path}")
