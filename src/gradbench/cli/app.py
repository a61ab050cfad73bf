"""The ``gradbench`` command line: parses arguments and calls the Python API, nothing more.

Data goes to stdout, progress and diagnostics to stderr. Bad input is one line on stderr and exit
status 2; a runtime failure is one line and status 1; Ctrl-C keeps what finished (status 130).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup
from typer.exceptions import Abort, TyperException

from gradbench.api import DEVICES, DTYPES, run_comparison
from gradbench.api import check as api_check
from gradbench.core.errors import InputError
from gradbench.core.settings import parse_assignment
from gradbench.core.status import Status
from gradbench.engine.run import RunConfig, RunResult
from gradbench.extend import plugins, registry
from gradbench.records.comparison import Comparison, write_atomic
from gradbench.records.stored import StoredResult, read_result
from gradbench.report.figure.build import figure_data
from gradbench.report.plot import figure_format, require_matplotlib, write_figure
from gradbench.report.tables import (
    conformance_table,
    estimator_listing,
    markdown_table,
    objective_listing,
    rich_table,
    sweep_table,
    sweep_warning_lines,
    warning_lines,
)
from gradbench.sweep.executors import EXECUTORS
from gradbench.sweep.grid import LIST_FORM, SCAN_FORM, parse_list, parse_scan
from gradbench.sweep.journal import journal_for
from gradbench.sweep.orchestration import SweepError, SweepResult, aggregate_path, check_resumable
from gradbench.sweep.orchestration import sweep as run_sweep

USAGE_ERROR, RUNTIME_ERROR, INTERRUPTED = 2, 1, 130


class _OneLineErrors(TyperGroup):
    """Report usage errors as one ``gradbench: error: …`` line instead of a boxed panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            outcome = super().main(*args, standalone_mode=False, **kwargs)
            code = outcome if isinstance(outcome, int) else 0
        except TyperException as error:
            _error(f"{error.format_message()} (see gradbench --help)")
            code = error.exit_code
        except Abort:
            _error("aborted")
            code = INTERRUPTED
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    invoke_without_command=True,
    help="Benchmark Monte Carlo gradient estimators: bias, variance and cost against exact"
    " gradients.",
)


def _error(message: str) -> None:
    print(f"gradbench: error: {message}", file=sys.stderr)


def _stdout() -> Console:
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 200)  # keep rows on one line in files and pipes
    return console


@app.callback()
def _root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


PluginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="SPEC",
        help="Load estimators and objectives from path/to/file.py, a module, or module:Class;"
        " repeatable.",
    ),
]


PlotOption = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        metavar="PATH",
        help="Draw the result as a figure, .png or .svg (needs: pip install 'gradbench[plot]').",
    ),
]


DeviceOption = Annotated[str, typer.Option(metavar="DEVICE", help=f"One of {', '.join(DEVICES)}.")]
DtypeOption = Annotated[str, typer.Option(metavar="DTYPE", help=f"One of {', '.join(DTYPES)}.")]


def _load_plugins(specs: list[str] | None) -> list[str]:
    """Load ``--plugin`` specs; a broken one (or entry point) is one warning line, not a stop.

    Returns the specs that loaded."""
    plugins.autoload()
    loaded = []
    for spec in specs or []:
        try:
            plugins.load_plugin(spec)
        except plugins.PluginError as error:
            _warn(str(error))
        else:
            loaded.append(spec)
    for problem in plugins.problems():
        _warn(problem)
    return loaded


def _warn(message: str) -> None:
    print(f"gradbench: warning: {message}", file=sys.stderr)


@app.command("list")
def list_command(plugin: PluginOption = None) -> None:
    """List the registered estimators and objectives, with requirements, settings and origin."""
    _load_plugins(plugin)
    console = _stdout()
    console.print(estimator_listing(registry.estimators.entries()))
    console.print(objective_listing(registry.objectives.entries()))


def _integer(minimum: int | None, noun: str) -> Callable[[str], int]:
    """A typer parser for integers >= ``minimum`` whose error repeats the bad value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not an integer") from None
        if minimum is not None and value < minimum:
            raise typer.BadParameter(f"{value} is not {noun} (must be >= {minimum})")
        return value

    return parse


INTEGER = _integer(None, "an integer")
POSITIVE = _integer(1, "a positive integer")
NON_NEGATIVE = _integer(0, "a non-negative integer")

ObjectivesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Objectives to run (default: all).", metavar="OBJECTIVE", show_default=False
    ),
]
EstimatorOption = Annotated[
    list[str] | None,
    typer.Option(
        "-e", "--estimator", metavar="NAME", help="Estimator to run; repeatable (default: all)."
    ),
]
SamplesOption = Annotated[
    int | None,
    typer.Option(
        "-n",
        "--samples",
        parser=POSITIVE,
        metavar="N",
        help=f"Per-sample estimates per pair (default: {RunConfig.n_samples}, or fewer where"
        " an objective with thousands of parameters sets its own).",
        show_default=False,
    ),
]
SeedOption = Annotated[
    int,
    typer.Option(
        parser=INTEGER, metavar="S", help="Seed; each pair derives its own generator from it."
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="KEY=VALUE for every chosen objective with setting KEY, or NAME.KEY=VALUE for "
        "one objective or estimator (e.g. --set sigma=2 --set fd.step=1e-3); repeatable.",
    ),
]
ChunkSizeOption = Annotated[
    int | None,
    typer.Option(
        parser=POSITIVE,
        metavar="N",
        help="Estimates per chunk (default: what fits 256 MiB on CPU, 4 GiB on CUDA, at most"
        " half the free memory).",
    ),
]
RepeatsOption = Annotated[
    int,
    typer.Option(
        parser=NON_NEGATIVE,
        metavar="N",
        help="Timed repeats after a warm-up (median); 0 skips timing.",
    ),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace output files that exist.")
]


def _parse_settings(assignments: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for text in assignments:
        key, value = parse_assignment(text)
        settings[key] = value
    return settings


def _check_output(path: Path | None, flag: str, overwrite: bool) -> None:
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


def _checked_outputs(
    tables: dict[str, Path | None], plot: Path | None, overwrite: bool
) -> dict[str, Path | None]:
    """The output files by flag, tables and ``--plot``, each checked before anything runs."""
    for flag, path in tables.items():
        _check_output(path, flag, overwrite)
    _check_figure(plot, "--plot", overwrite)
    return {**tables, "--plot": plot}


def _check_figure(path: Path | None, flag: str, overwrite: bool) -> None:
    """Refuse a figure path that cannot be written, or plotting without matplotlib, up front."""
    if path is not None:
        figure_format(path, flag)
        _check_output(path, flag, overwrite)
        require_matplotlib()


def _write_outputs(
    writers: dict[str, Callable[[Path], None]],
    outputs: dict[str, Path | None],
    interrupted: bool,
) -> None:
    """Write each requested file (keyed by its flag), each atomically. An interrupted run may
    have nothing to draw yet: its figure is then skipped with a warning, not an error."""
    for flag, path in outputs.items():
        if path is None:
            continue
        try:
            writers[flag](path)
        except InputError as error:
            if not (interrupted and flag == "--plot"):
                raise
            _warn(f"{flag} {path} not written: {error}")
            continue
        print(f"wrote {path}", file=sys.stderr)


@app.command()
def compare(
    ctx: typer.Context,
    objectives: ObjectivesArgument = None,
    estimator: EstimatorOption = None,
    samples: SamplesOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    set_: SetOption = None,
    chunk_size: ChunkSizeOption = None,
    repeats: RepeatsOption = RunConfig.timing_repeats,
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
    plot: PlotOption = None,
    overwrite: OverwriteOption = False,
    plugin: PluginOption = None,
) -> None:
    """Measure bias, variance and cost of each estimator on each objective."""
    _load_plugins(plugin)
    try:
        tables = {"--csv": csv, "--detail-csv": detail_csv, "--json": json, "--markdown": markdown}
        outputs = _checked_outputs(tables, plot, overwrite)
        comparison = _run_with_progress(
            objectives=objectives,
            estimators=estimator,
            n_samples=samples,
            seed=seed,
            device=device,
            dtype=dtype,
            settings=_parse_settings(set_ or []),
            chunk_size=chunk_size,
            timing_repeats=repeats,
            arguments=_arguments(ctx),
        )
    except InputError as error:
        _error(str(error))
        raise typer.Exit(USAGE_ERROR) from None

    table = comparison.table()
    _stdout().print(rich_table(table))
    for line in warning_lines(table):
        print(f"warning: {line}", file=sys.stderr)
    failed = int((table["status"] == Status.FAILED).sum())
    if failed:
        print(f"{failed} pair(s) failed; their reason is in the table", file=sys.stderr)
    writers = {
        "--csv": comparison.write_csv,
        "--detail-csv": comparison.write_detail_csv,
        "--json": comparison.write_json,
        "--markdown": lambda path: write_atomic(path, markdown_table(comparison.table())),
        "--plot": lambda path: write_figure(figure_data(StoredResult.of(comparison)), path),
    }
    try:
        _write_outputs(writers, outputs, comparison.interrupted)
    except (OSError, InputError) as error:
        _error(f"could not write output: {error}")
        raise typer.Exit(RUNTIME_ERROR) from None
    if comparison.interrupted:
        written = [str(path) for path in outputs.values() if path is not None]
        where = f" and in {', '.join(written)}" if written else ""
        _error(f"interrupted: {len(table)} finished pair(s) are in the table above{where}")
        raise typer.Exit(INTERRUPTED)


def _arguments(ctx: typer.Context) -> dict[str, Any]:
    """The parsed command line, JSON-safe, for the result's provenance."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return {"command": ctx.info_name, **{k.rstrip("_"): plain(v) for k, v in ctx.params.items()}}


def _progress_bar() -> Progress:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    stderr = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal)


def _run_with_progress(**arguments: Any) -> Comparison:
    """Run the comparison with a progress bar on stderr (only when stderr is a terminal)."""
    with _progress_bar() as bar:
        task = bar.add_task("comparing", total=None)

        def advance(result: RunResult) -> None:
            bar.update(
                task, advance=1, description=f"{result.objective.name} × {result.estimator.name}"
            )

        return run_comparison(on_result=advance, **arguments)


@app.command()
def check(
    estimator: Annotated[str, typer.Argument(metavar="ESTIMATOR", help="Estimator to check.")],
    samples: Annotated[
        int,
        typer.Option(
            "-n", "--samples", parser=POSITIVE, metavar="N", help="Estimates per unbiasedness test."
        ),
    ] = 100_000,
    seed: Annotated[int, typer.Option(parser=INTEGER, metavar="S", help="Seed of every test.")] = 0,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="An option of the estimator; repeatable."),
    ] = None,
    plugin: PluginOption = None,
) -> None:
    """Run the conformance suite on an estimator: shape, dtype, device, finite values,
    determinism, and unbiasedness on constant, linear and quadratic costs.
    Exits 1 when a check fails."""
    _load_plugins(plugin)
    try:
        report = api_check(
            estimator, samples, seed, device, dtype, options=_parse_settings(set_ or [])
        )
    except InputError as error:
        _error(str(error))
        raise typer.Exit(USAGE_ERROR) from None
    _stdout().print(conformance_table(report))
    if not report.passed:
        raise typer.Exit(RUNTIME_ERROR)


ResultsArgument = Annotated[
    Path,
    typer.Argument(
        metavar="RESULTS",
        help="A saved result: the CSV of --csv (compare or sweep) or the JSON of --json.",
        show_default=False,
    ),
]


@app.command("plot")
def plot_command(
    results: ResultsArgument,
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
    plugin: PluginOption = None,
) -> None:
    """Draw a result: variance (log scale) against the swept parameter, one line per estimator
    with its interval band and the exact variance where known, with bias and time panels; for a
    comparison without a sweep, one point per estimator."""
    _load_plugins(plugin)
    try:
        _check_figure(out, "--out", overwrite)
        data = figure_data(read_result(results, detail), x)
    except InputError as error:
        _error(str(error))
        raise typer.Exit(USAGE_ERROR) from None
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        write_figure(data, out)
    except OSError as error:
        _error(f"could not write {out}: {error}")
        raise typer.Exit(RUNTIME_ERROR) from None
    print(f"wrote {out}", file=sys.stderr)


@app.command()
def report(
    results: ResultsArgument,
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
        _check_output(markdown, "--markdown", overwrite)
        table = read_result(results).table
    except InputError as error:
        _error(str(error))
        raise typer.Exit(USAGE_ERROR) from None
    if markdown is None:
        _stdout().print(rich_table(table))
        return
    try:
        write_atomic(markdown, markdown_table(table))
    except OSError as error:
        _error(f"could not write {markdown}: {error}")
        raise typer.Exit(RUNTIME_ERROR) from None
    print(f"wrote {markdown}", file=sys.stderr)


@app.command()
def sweep(
    ctx: typer.Context,
    objectives: ObjectivesArgument = None,
    estimator: EstimatorOption = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar=LIST_FORM,
            help="Sweep a setting over these values; NAME routes like --set (KEY or"
            " NAME.KEY). Repeatable: several axes make a grid.",
        ),
    ] = None,
    param_scan: Annotated[
        list[str] | None,
        typer.Option(
            "--param-scan",
            metavar=SCAN_FORM,
            help="Sweep a setting over COUNT values from START to STOP, evenly spaced (lin,"
            " the default) or log spaced (log: bounds > 0). Repeatable.",
        ),
    ] = None,
    seeds: Annotated[
        int,
        typer.Option(
            parser=POSITIVE,
            metavar="R",
            help="Replicates of every grid point, each with its own seed (from --seed and the"
            " task); the summary shows mean ± standard error over them.",
        ),
    ] = 1,
    samples: SamplesOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    set_: SetOption = None,
    chunk_size: ChunkSizeOption = None,
    repeats: RepeatsOption = RunConfig.timing_repeats,
    executor: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help=f"Where tasks run: {', '.join(EXECUTORS)} (one after another here, a local"
            " process pool, or Dask distributed from the gradbench dask extra).",
        ),
    ] = "inprocess",
    workers: Annotated[
        int | None,
        typer.Option(
            parser=POSITIVE,
            metavar="N",
            help="Processes of the pool or of the Dask LocalCluster (default: CPU cores).",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Run on the existing Dask cluster whose scheduler is here (tcp://host:port).",
        ),
    ] = None,
    shared_timing: Annotated[
        bool,
        typer.Option(
            "--shared-timing",
            help="Time tasks while others run on the same device (faster; such timings are"
            " marked timing_contention). Default: one timed task per device at a time.",
        ),
    ] = False,
    csv: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Write one row per task as CSV; finished tasks are kept in PATH.parts as they"
            " finish, and the aggregate goes to PATH's stem + '-aggregate.csv'.",
        ),
    ] = None,
    aggregate_csv: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Write the mean ± standard error per grid point here instead.",
        ),
    ] = None,
    detail_csv: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Write one row per task and gradient coordinate."),
    ] = None,
    plot: PlotOption = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Finish the sweep in --csv's journal: run only its missing tasks."
        ),
    ] = False,
    overwrite: OverwriteOption = False,
    plugin: PluginOption = None,
) -> None:
    """Run estimators over a grid of settings, with replicates: one row per (objective,
    estimator, grid point, replicate), and mean ± standard error per grid point."""
    loaded = _load_plugins(plugin)
    try:
        axes = [*map(parse_list, param or []), *map(parse_scan, param_scan or [])]
        if resume and csv is None:
            raise InputError("--resume needs --csv PATH, the sweep's table and journal")
        if resume and csv is not None:
            check_resumable(csv)
        if csv is not None and aggregate_csv is None:
            aggregate_csv = aggregate_path(csv)
        tables = {"--csv": csv, "--aggregate-csv": aggregate_csv, "--detail-csv": detail_csv}
        outputs = _checked_outputs(tables, plot, overwrite or resume)
        result = _sweep_with_progress(
            objectives=objectives,
            estimators=estimator,
            axes=axes,
            replicates=seeds,
            n_samples=samples,
            seed=seed,
            device=device,
            dtype=dtype,
            settings=_parse_settings(set_ or []),
            chunk_size=chunk_size,
            timing_repeats=repeats,
            executor=executor,
            workers=workers,
            scheduler=scheduler,
            plugins=loaded,
            journal=None if csv is None else journal_for(csv),
            resume=resume,
            overwrite=overwrite,
            exclusive_timing=not shared_timing,
        )
    except InputError as error:
        _error(str(error))
        raise typer.Exit(USAGE_ERROR) from None
    except SweepError as error:
        _error(str(error))
        raise typer.Exit(RUNTIME_ERROR) from None

    _stdout().print(sweep_table(result))
    for line in sweep_warning_lines(result.table()):
        print(f"warning: {line}", file=sys.stderr)
    writers = {
        "--csv": result.write_csv,
        "--aggregate-csv": result.write_aggregate_csv,
        "--detail-csv": result.write_detail_csv,
        "--plot": lambda path: write_figure(
            figure_data(StoredResult("this sweep", result.table())), path
        ),
    }
    try:
        _write_outputs(writers, outputs, result.interrupted)
    except (OSError, InputError) as error:
        _error(f"could not write output: {error}")
        raise typer.Exit(RUNTIME_ERROR) from None
    if result.interrupted:
        kept = f"; they are kept in {result.journal}: finish with --resume" if csv else ""
        _error(f"interrupted: {len(result.finished)} of {len(result.tasks)} tasks finished{kept}")
        raise typer.Exit(INTERRUPTED)


def _sweep_with_progress(**arguments: Any) -> SweepResult:
    """Run the sweep with a progress bar on stderr (only when stderr is a terminal)."""
    with _progress_bar() as bar:
        task = bar.add_task("sweeping", total=None)

        def advance(finished: int, total: int, key: str | None) -> None:
            bar.update(task, completed=finished, total=total, description=key or "sweeping")

        return run_sweep(on_progress=advance, **arguments)


def main() -> None:
    """Console-script entry point."""
    app()
