"""``gradbench compare``: every estimator on every objective, as one table and its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gradbench.cli import options
from gradbench.cli.app import app
from gradbench.cli.console import USAGE_ERROR, error
from gradbench.cli.outputs import checked_outputs, finish, written
from gradbench.cli.plugins import load_plugins
from gradbench.cli.progress import progress
from gradbench.core.errors import InputError
from gradbench.core.status import Status
from gradbench.engine.run import RunConfig
from gradbench.records.files import write_atomic
from gradbench.report.plot import write_figure


@app.command()
def compare(
    ctx: typer.Context,
    objectives: options.Objectives = None,
    estimator: options.Estimators = None,
    samples: options.Samples = None,
    seed: options.Seed = 0,
    device: options.Device = "cpu",
    dtype: options.Dtype = "float32",
    set_: options.Settings = None,
    chunk_size: options.ChunkSize = None,
    repeats: options.Repeats = RunConfig.timing_repeats,
    reference_samples: options.ReferenceSamples = None,
    reference_estimator: options.ReferenceEstimator = None,
    no_cache: options.NoCache = False,
    cache_dir: options.CacheDir = None,
    csv: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Write the main table as CSV.")
    ] = None,
    detail_csv: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Write one row per parameter coordinate as CSV."),
    ] = None,
    json: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Write the record with provenance as JSON.")
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Write the displayed table as Markdown.")
    ] = None,
    plot: options.Plot = None,
    columns: options.ColumnNames = None,
    wide: options.Wide = False,
    sort: options.Sort = None,
    overwrite: options.Overwrite = False,
    plugin: options.Plugins = None,
) -> None:
    """Measure bias, variance and cost of each estimator on each objective. Exits 1 when a pair
    failed (after writing every file), 2 on bad input."""
    from gradbench.api import run_comparison
    from gradbench.records.stored import StoredResult
    from gradbench.report.figure.build import figure_data
    from gradbench.report.tables import warning_lines
    from gradbench.report.view import ViewOptions, markdown_view, terminal_view

    load_plugins(plugin)
    try:
        view = ViewOptions(options.column_names(columns), wide, sort)
        tables = {"--csv": csv, "--detail-csv": detail_csv, "--json": json, "--markdown": markdown}
        outputs = checked_outputs(tables, plot, overwrite)
        with progress("comparing", unit="pairs") as update:
            comparison = run_comparison(
                **options.run_arguments(
                    objectives,
                    estimator,
                    samples,
                    seed,
                    device,
                    dtype,
                    set_,
                    chunk_size,
                    repeats,
                    options.reference_options(
                        reference_samples, reference_estimator, no_cache, cache_dir
                    ),
                ),
                on_progress=update,
                arguments=_arguments(ctx),
            )
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None

    table = comparison.table()
    shown = terminal_view(table, view)
    messages = [f"warning: {line}" for line in warning_lines(table)]
    failed = int((table["status"] == Status.FAILED).sum())
    if failed:
        messages.append(f"{failed} pair(s) failed; their reason is in the table")
    writers = {
        "--csv": comparison.write_csv,
        "--detail-csv": comparison.write_detail_csv,
        "--json": comparison.write_json,
        "--markdown": lambda path: write_atomic(path, markdown_view(table, view)),
        "--plot": lambda path: write_figure(figure_data(StoredResult.of(comparison)), path),
    }
    kept = f"{len(table)} finished pair(s) are in the table above{written(outputs)}"
    finish(
        shown,
        messages,
        writers,
        outputs,
        interrupted=kept if comparison.interrupted else None,
        failed=bool(failed),
    )


def _arguments(ctx: typer.Context) -> dict[str, Any]:
    """The parsed command line, JSON-safe, for the result's provenance."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return {"command": ctx.info_name, **{k.rstrip("_"): plain(v) for k, v in ctx.params.items()}}
