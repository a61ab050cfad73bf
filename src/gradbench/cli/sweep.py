"""``gradbench sweep``: estimators over a grid of settings with replicates, journalled."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradbench.cli import options
from gradbench.cli.app import app
from gradbench.cli.console import RUNTIME_ERROR, USAGE_ERROR, error
from gradbench.cli.outputs import checked_outputs, finish
from gradbench.cli.plugins import load_plugins
from gradbench.cli.progress import progress
from gradbench.core.errors import InputError
from gradbench.core.status import Status
from gradbench.engine.run import RunConfig
from gradbench.report.plot import write_figure
from gradbench.sweeps.executors import EXECUTORS
from gradbench.sweeps.grid import LIST_FORM, SCAN_FORM, parse_list, parse_scan
from gradbench.sweeps.journal import journal_for

Axes = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar=LIST_FORM,
        help="Sweep a setting over these values; NAME routes like --set (KEY or"
        " NAME.KEY). Repeatable: several axes make a grid.",
    ),
]
Scans = Annotated[
    list[str] | None,
    typer.Option(
        "--param-scan",
        metavar=SCAN_FORM,
        help="Sweep a setting over COUNT values from START to STOP, evenly spaced (lin,"
        " the default) or log spaced (log: bounds > 0). Repeatable.",
    ),
]
Replicates = Annotated[
    int,
    typer.Option(
        parser=options.POSITIVE,
        metavar="R",
        help="Replicates of every grid point, each with its own seed (from --seed and the"
        " task); the summary shows mean ± standard error over them.",
    ),
]
Executor = Annotated[
    str,
    typer.Option(
        metavar="NAME",
        help=f"Where tasks run: {', '.join(EXECUTORS)} (one after another here, a local"
        " process pool, or Dask distributed from the gradbench dask extra).",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        parser=options.POSITIVE,
        metavar="N",
        help="Processes of the pool or of the Dask LocalCluster (default: CPU cores).",
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS",
        help="Run on the existing Dask cluster whose scheduler is here (tcp://host:port).",
    ),
]
SharedTiming = Annotated[
    bool,
    typer.Option(
        "--shared-timing",
        help="Time tasks while others run on the same device (faster; such timings are"
        " marked timing_contention). Default: one timed task per device at a time.",
    ),
]
TaskCsv = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH",
        help="Write one row per task as CSV; finished tasks are kept in PATH.parts as they"
        " finish, and the aggregate goes to PATH's stem + '-aggregate.csv'.",
    ),
]
AggregateCsv = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH", help="Write the mean ± standard error per grid point here instead."
    ),
]
DetailCsv = Annotated[
    Path | None,
    typer.Option(metavar="PATH", help="Write one row per task and gradient coordinate."),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume", help="Finish the sweep in --csv's journal: run only its missing tasks."
    ),
]


@app.command()
def sweep(
    objectives: options.Objectives = None,
    estimator: options.Estimators = None,
    param: Axes = None,
    param_scan: Scans = None,
    seeds: Replicates = 1,
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
    executor: Executor = "inprocess",
    workers: Workers = None,
    scheduler: Scheduler = None,
    shared_timing: SharedTiming = False,
    csv: TaskCsv = None,
    aggregate_csv: AggregateCsv = None,
    detail_csv: DetailCsv = None,
    plot: options.Plot = None,
    resume: Resume = False,
    overwrite: options.Overwrite = False,
    plugin: options.Plugins = None,
) -> None:
    """Run estimators over a grid of settings, with replicates: one row per (objective,
    estimator, grid point, replicate), and mean ± standard error per grid point."""
    from gradbench.records.stored import StoredResult
    from gradbench.report.figure.build import figure_data
    from gradbench.report.sweep_summary import sweep_table, sweep_warning_lines
    from gradbench.sweeps.orchestration import SweepError, aggregate_path, check_resumable
    from gradbench.sweeps.orchestration import sweep as run_sweep

    loaded = load_plugins(plugin)
    try:
        if resume:
            if csv is None:
                raise InputError("--resume needs --csv PATH, the sweep's table and journal")
            check_resumable(csv)
        if csv is not None and aggregate_csv is None:
            aggregate_csv = aggregate_path(csv)
        tables = {"--csv": csv, "--aggregate-csv": aggregate_csv, "--detail-csv": detail_csv}
        outputs = checked_outputs(tables, plot, overwrite or resume)
        with progress("sweeping", unit="tasks") as update:
            result = run_sweep(
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
                axes=[*map(parse_list, param or []), *map(parse_scan, param_scan or [])],
                replicates=seeds,
                executor=executor,
                workers=workers,
                scheduler=scheduler,
                plugins=loaded,
                journal=None if csv is None else journal_for(csv),
                resume=resume,
                overwrite=overwrite,
                exclusive_timing=not shared_timing,
                on_progress=lambda done, total, key: update(done, total, key or ""),
            )
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None
    except SweepError as problem:
        error(str(problem))
        raise typer.Exit(RUNTIME_ERROR) from None

    writers = {
        "--csv": result.write_csv,
        "--aggregate-csv": result.write_aggregate_csv,
        "--detail-csv": result.write_detail_csv,
        "--plot": lambda path: write_figure(
            figure_data(StoredResult("this sweep", result.table())), path
        ),
    }
    kept = f"; they are kept in {result.journal}: finish with --resume" if csv else ""
    interrupted = f"{len(result.finished)} of {len(result.tasks)} tasks finished{kept}"
    table = result.table()
    messages = [f"warning: {line}" for line in sweep_warning_lines(table)]
    failed = int((table["status"] == Status.FAILED).sum())
    if failed:
        messages.append(
            f"{failed} task(s) failed; their reason is in the CSV (--resume reruns them)"
        )
    finish(
        sweep_table(result),
        messages,
        writers,
        outputs,
        interrupted=interrupted if result.interrupted else None,
        failed=bool(failed),
    )
