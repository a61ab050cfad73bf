"""Sweeps: estimators on objectives over a grid of settings, repeated with independent seeds.

:func:`sweep` plans the tasks (:mod:`gradbench.sweeps.tasks`), runs those the journal does not
hold on an executor (:mod:`gradbench.sweeps.executors`), records each as it finishes
(:mod:`gradbench.sweeps.journal`) and returns a :class:`~gradbench.sweeps.result.SweepResult`. The
same sweep run in this process, in a process pool or on Dask gives the same numbers (for the
same device, dtype and chunk size). ``resume`` skips the tasks the journal holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from gradbench.api import (
    ReferenceOptions,
    check_references,
    check_run_options,
    instantiate,
    resolve_device,
    resolve_dtype,
)
from gradbench.core.errors import InputError
from gradbench.core.status import Status
from gradbench.engine.run import RunConfig
from gradbench.extend import registry
from gradbench.extend.plugins import PluginError, absolute_spec, load_plugin
from gradbench.sweeps.executors import Executor, make_executor
from gradbench.sweeps.grid import Axis, Number
from gradbench.sweeps.journal import Journal, journal_for
from gradbench.sweeps.result import SweepResult
from gradbench.sweeps.tasks import Task, TaskOptions, plan, run_task


class SweepError(RuntimeError):
    """A sweep stopped by a failure outside any pair (a worker died, a plugin is missing)."""


ProgressCallback = Callable[[int, int, str | None], None]


def sweep(
    objectives: Sequence[str] | None = None,
    estimators: Sequence[str] | None = None,
    axes: Sequence[Axis] | Mapping[str, Sequence[Number]] = (),
    replicates: int = 1,
    n_samples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    settings: Mapping[str, object] | None = None,
    chunk_size: int | None = None,
    timing_repeats: int = RunConfig.timing_repeats,
    executor: str | Executor = "inprocess",
    workers: int | None = None,
    scheduler: str | None = None,
    plugins: Sequence[str] = (),
    journal: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    exclusive_timing: bool = True,
    on_progress: ProgressCallback | None = None,
    reference: ReferenceOptions | None = None,
) -> SweepResult:
    """Run every task of a sweep and return the finished ones.

    ``objectives`` and ``estimators`` are registered names (default: all); ``axes`` the swept
    settings (:class:`~gradbench.sweeps.grid.Axis`, or a mapping of name to values), each routed
    like ``--set``; ``settings`` the fixed ones; ``replicates`` the independent repetitions of
    every grid point. The run options (``reference`` among them) are
    :func:`~gradbench.api.run_comparison`'s.

    ``executor`` is ``"inprocess"``, ``"process"`` (a pool of ``workers`` processes) or
    ``"dask"`` (a LocalCluster of ``workers``, or the cluster at ``scheduler``), or an
    :class:`~gradbench.sweeps.executors.Executor`. ``plugins`` are spec strings (see
    :func:`~gradbench.extend.plugins.load_plugin`) that every worker loads; file specs are made
    absolute here, before they are shipped, so workers in other directories find the files.

    ``journal`` (a directory) stores each task as it finishes; ``resume`` skips the tasks it
    holds, ``overwrite`` deletes it first. ``on_progress(finished, total, task_key)`` is
    called before the first task and after each. Ctrl-C stops the sweep and returns what
    finished with ``interrupted=True``. Raises :class:`InputError` for bad input before
    anything runs, :class:`SweepError` when a worker or the cluster fails.
    """
    check_run_options(n_samples, chunk_size, timing_repeats, seed)
    specs = check_task_inputs(resume, journal, device, dtype, plugins)
    chosen_axes = _axes(axes)
    objective_names = list(objectives or registry.objectives.names())
    estimator_names = list(estimators or registry.estimators.names())
    fixed = dict(settings or {})
    tasks = plan(objective_names, estimator_names, chosen_axes, replicates, fixed)
    running = make_executor(executor, workers, scheduler) if isinstance(executor, str) else executor
    reference = reference or ReferenceOptions()
    chosen = instantiate(objective_names, estimator_names, fixed)[0]
    check_references(chosen, reference.plan(fixed))
    options = TaskOptions(
        n_samples,
        seed,
        device,
        dtype,
        chunk_size,
        timing_repeats,
        specs,
        exclusive_timing,
        reference=reference,
    )
    axis_names = tuple(axis.name for axis in chosen_axes)
    result = SweepResult(tasks, {}, axis_names, options, executor="", journal=journal)
    try:
        with running:
            options = replace(
                options, concurrency=running.concurrency, torch_threads=running.torch_threads
            )
            result.options, result.executor = options, running.describe()
            manifest = {**options.manifest(), "settings": {k: str(v) for k, v in fixed.items()}}
            store = None if journal is None else Journal.start(journal, manifest, resume, overwrite)
            _run(tasks, options, running, store, result, on_progress)
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def check_task_inputs(
    resume: bool, journal: Path | None, device: str, dtype: str, plugins: Sequence[str]
) -> tuple[str, ...]:
    """The checks every journalled run of tasks makes before anything runs (a sweep, a
    training run): ``resume`` needs a journal, the device and dtype exist, and the plugins
    load here. Returns the plugin specs made absolute, as the workers will load them."""
    if resume and journal is None:
        raise InputError("resume needs a journal: --resume needs --csv PATH")
    resolve_device(device)
    resolve_dtype(dtype)
    specs = tuple(absolute_spec(spec) for spec in plugins)
    for spec in specs:
        try:
            load_plugin(spec)
        except PluginError as error:
            raise InputError(str(error)) from None
    return specs


def _run(
    tasks: list[Task],
    options: TaskOptions,
    running: Executor,
    store: Journal | None,
    result: SweepResult,
    on_progress: ProgressCallback | None,
) -> None:
    """Run the tasks that the journal does not hold, recording each as it finishes. A task
    whose pair failed (out of memory, say) runs again: its record is replaced."""
    if store is not None:
        planned = {task.key for task in tasks}
        result.records.update(
            (key, record)
            for key, record in store.finished().items()
            if key in planned and all(row["status"] != Status.FAILED for row in record["rows"])
        )
    result.reused = len(result.records)
    todo = [task for task in tasks if task.key not in result.records]
    if on_progress is not None:
        on_progress(len(result.records), len(tasks), None)
    try:
        for record in running.run(partial(run_task, options=options), todo):
            if store is not None:
                store.append(record)
            result.records[record["task"]] = record
            if on_progress is not None:
                on_progress(len(result.records), len(tasks), record["task"])
    except Exception as error:
        raise SweepError(
            f"{type(error).__name__}: {error}".replace("\n", " ")
            + f" ({len(result.records)} of {len(tasks)} tasks finished{_kept(result.journal)})"
        ) from error


def _kept(journal: Path | None) -> str:
    return f"; they are kept in {journal}: finish with --resume" if journal is not None else ""


def _axes(axes: Sequence[Axis] | Mapping[str, Sequence[Number]]) -> list[Axis]:
    if isinstance(axes, Mapping):
        return [Axis.of(name, values) for name, values in axes.items()]
    return list(axes)


def aggregate_path(csv: Path) -> Path:
    """Where the aggregate goes by default: ``results-aggregate.csv`` beside ``results.csv``."""
    return csv.with_name(f"{csv.stem}-aggregate{csv.suffix or '.csv'}")


def check_resumable(csv: Path) -> None:
    """Refuse to resume into ``csv`` when it holds a table that no journal belongs to."""
    if csv.exists() and not journal_for(csv).exists():
        raise InputError(
            f"--resume: {str(csv)!r} exists but its journal {str(journal_for(csv))!r} does not,"
            " so there is no sweep to resume; pass --overwrite to replace the file"
        )
