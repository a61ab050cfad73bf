"""``gradbench train``: estimators along an optimisation trajectory, with a basket measured at
every checkpoint (:mod:`gradbench.engine.training`, :mod:`gradbench.sweeps.training`)."""

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
from gradbench.cli.sweep import Executor, Scheduler, Workers
from gradbench.core.errors import InputError
from gradbench.engine.run import RunConfig
from gradbench.engine.training import OPTIMIZERS
from gradbench.sweeps.journal import journal_for

Basket = Annotated[
    list[str] | None,
    typer.Option(
        "--basket",
        metavar="NAME",
        help="Estimator measured at every checkpoint; repeatable (default: the trained ones).",
    ),
]
Optimizer = Annotated[str, typer.Option(metavar="NAME", help=f"One of {', '.join(OPTIMIZERS)}.")]


@app.command()
def train(
    objectives: options.Objectives = None,
    estimator: options.Estimators = None,
    steps: Annotated[
        int, typer.Option(parser=options.POSITIVE, metavar="N", help="Optimizer steps.")
    ] = 100,
    batch: Annotated[
        int,
        typer.Option(parser=options.POSITIVE, metavar="B", help="Estimates averaged per step."),
    ] = 16,
    optimizer: Optimizer = "sgd",
    lr: Annotated[float, typer.Option(metavar="LR", help="Learning rate.")] = 0.01,
    eval_every: Annotated[
        int,
        typer.Option(
            parser=options.POSITIVE, metavar="K", help="Steps between checkpoints (and the ends)."
        ),
    ] = 10,
    basket: Basket = None,
    seeds: Annotated[
        int,
        typer.Option(
            parser=options.POSITIVE,
            metavar="R",
            help="Trajectories per (objective, estimator), each with its own seed.",
        ),
    ] = 1,
    samples: Annotated[
        int,
        typer.Option(
            "-n",
            "--samples",
            parser=options.POSITIVE,
            metavar="N",
            help="Estimates per basket estimator at each checkpoint, and draws of an estimated"
            " J(θ).",
        ),
    ] = 10_000,
    seed: options.Seed = 0,
    device: options.Device = "cpu",
    dtype: options.Dtype = "float32",
    set_: options.Settings = None,
    repeats: options.Repeats = RunConfig.timing_repeats,
    reference_samples: options.ReferenceSamples = None,
    reference_estimator: options.ReferenceEstimator = None,
    no_cache: options.NoCache = False,
    cache_dir: options.CacheDir = None,
    executor: Executor = "inprocess",
    workers: Workers = None,
    scheduler: Scheduler = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Write one row per checkpoint as CSV; finished trajectories are kept in"
            " PATH.parts as they finish (--resume).",
        ),
    ] = None,
    basket_csv: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Write one row per checkpoint and basket estimator."),
    ] = None,
    json: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Write both tables, θ and the provenance as JSON."),
    ] = None,
    plot: options.Plot = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Write the curves for TensorBoard (pip install 'gradbench\\[tensorboard]').",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish the run in --csv's journal.")
    ] = False,
    overwrite: options.Overwrite = False,
    plugin: options.Plugins = None,
) -> None:
    """Train θ with each estimator and measure a basket of estimators along the way: J(θ),
    ‖∇J(θ)‖ and the basket's statistics at every checkpoint."""
    from gradbench.report.training_plot import write_training_figure
    from gradbench.report.training_summary import training_view
    from gradbench.sweeps.orchestration import SweepError
    from gradbench.sweeps.training import train as run_training

    loaded = load_plugins(plugin)
    try:
        if resume and csv is None:
            raise InputError("--resume needs --csv PATH, the run's table and journal")
        tables = {"--csv": csv, "--basket-csv": basket_csv, "--json": json}
        outputs = checked_outputs(tables, plot, overwrite or resume)
        check_tensorboard(tensorboard, overwrite)
        with progress("training", unit="trajectories") as update:
            result = run_training(
                objectives,
                estimator,
                basket,
                seeds,
                steps,
                batch,
                optimizer,
                lr,
                eval_every,
                samples,
                seed,
                device,
                dtype,
                options.parse_settings(set_),
                repeats,
                executor,
                workers,
                scheduler,
                loaded,
                None if csv is None else journal_for(csv),
                resume,
                overwrite,
                options.reference_options(
                    reference_samples, reference_estimator, no_cache, cache_dir
                ),
                on_progress=lambda done, total, key: update(done, total, key or ""),
            )
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None
    except SweepError as problem:
        error(str(problem))
        raise typer.Exit(RUNTIME_ERROR) from None

    table, measured = result.table(), result.basket_table()
    writers = {
        "--csv": result.write_csv,
        "--basket-csv": result.write_basket_csv,
        "--json": result.write_json,
        "--plot": lambda path: write_training_figure(table, measured, path),
    }
    if tensorboard is not None:
        writers["--tensorboard"] = lambda path: replace_tensorboard(table, measured, path)
        outputs = {**outputs, "--tensorboard": tensorboard}
    failed = table[table["status"] == "failed"].drop_duplicates(["objective", "estimator"])
    messages = [
        f"warning: {row.objective} × {row.estimator} stopped early: {row.reason}"
        for row in failed.itertuples()
    ]
    finish(
        training_view(table, measured),
        messages,
        writers,
        outputs,
        interrupted="the finished trajectories are shown above" if result.interrupted else None,
        failed=bool(len(failed)),
    )


def check_tensorboard(directory: Path | None, overwrite: bool) -> None:
    """Refuse, before anything runs, a ``--tensorboard`` path that is a file, or a directory
    that already holds event files (TensorBoard would show both runs' lines) unless
    ``--overwrite``: :func:`replace_tensorboard` then deletes those, and only those, when the
    run is done."""
    from gradbench.report.tensorboard import require_tensorboard

    if directory is None:
        return
    require_tensorboard()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"--tensorboard {str(directory)!r} is a file; give a directory")
    if _events(directory) and not overwrite:
        raise InputError(
            f"--tensorboard {str(directory)!r} already holds {len(_events(directory))} event"
            " file(s); pass --overwrite to replace them, or choose another directory"
        )


def replace_tensorboard(table, basket, directory: Path) -> None:
    """Delete the event files ``directory`` holds, then write this run's."""
    from gradbench.report.tensorboard import write_tensorboard

    for event in _events(directory):
        event.unlink()
    write_tensorboard(table, basket, directory)


def _events(directory: Path) -> list[Path]:
    return sorted(directory.rglob("events.out.tfevents.*")) if directory.is_dir() else []
