"""Sweeps: estimators on objectives over a grid of settings, repeated with independent seeds.

A sweep is a list of independent **tasks**, one per (objective, estimator, grid point,
replicate). A task's key names it everywhere (the journal, the ``task`` column)::

    gaussian-square|reinforce|k=0.5,sigma=2|replicate=3

and its seed is ``derive_seed(seed, key)``, so a task's numbers depend on the sweep's options
and its key alone: not on the executor, on the order in which tasks finish, or on which other
tasks ran. The same sweep run in this process, in a process pool or on Dask gives the same
numbers (for the same device, dtype and chunk size).

An axis applies to the tasks it routes to, as ``--set`` does: KEY to the objectives declaring
it, NAME.KEY to that objective or estimator. A task's grid point holds only the axes that
apply to it; an axis that does not is empty (NaN) in the task's ``param_*`` column, and the
task is not repeated along it.

Outputs, all views of the finished tasks' records:

- :meth:`SweepResult.table`: one row per task, every column of
  :meth:`~gradbench.records.comparison.Comparison.table` (``seed`` is the task's seed, ``best`` is
  judged among the estimators of one replicate and objective configuration) plus ``task``,
  ``replicate`` (0 … R−1), one ``param_<name>`` column per axis holding the value as given,
  ``timing_contention`` and ``torch_threads``.
- :meth:`SweepResult.aggregate`: one row per (objective, estimator, grid point): ``status``,
  ``replicates`` (the ok ones, which the statistics use), ``<m>_mean`` and ``<m>_se`` (the
  standard error s/√R across replicates; NaN with one) of each metric in :data:`METRICS`,
  ``bias_p`` (the replicates' smallest bias p-value × R: a Bonferroni test over them) and
  ``reference_se_max``.
- :meth:`SweepResult.detail_table`: one row per task and gradient coordinate.

**Timings.** With ``exclusive_timing`` (the default) each task holds its device's lock
(:mod:`gradbench.sweep.device_lock`) shared while it computes and exclusive while it times, so no
timing overlaps other work of a sweep on that device and ``timing_contention`` is False.
Without it, or where the lock is unavailable, the timings of a sweep that runs several tasks
at once are marked ``timing_contention = True``. Each task also records its torch thread count.

**Resuming.** With a journal (:mod:`gradbench.sweep.journal`) every finished task is stored as soon
as it finishes; ``resume`` skips the tasks it holds and runs the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from gradbench.api import instantiate, resolve_device, resolve_dtype, run_comparison
from gradbench.core.errors import InputError
from gradbench.core.routing import addressed
from gradbench.core.seeding import derive_seed
from gradbench.core.status import Status
from gradbench.engine.run import RunConfig
from gradbench.extend import registry
from gradbench.extend.plugins import PluginError, load_plugin
from gradbench.records.comparison import DETAIL_COLUMNS, Comparison
from gradbench.records.files import write_atomic
from gradbench.records.ranking import mark_best
from gradbench.sweep.device_lock import device_lock
from gradbench.sweep.executors import Executor, make_executor
from gradbench.sweep.grid import Axis, Number, grid, number_text
from gradbench.sweep.journal import Journal, journal_for

#: Metrics averaged over replicates in :meth:`SweepResult.aggregate`.
METRICS = (
    "variance",
    "bias_norm",
    "mse",
    "snr",
    "cosine",
    "sign_error",
    "time_per_sample_s",
    "work_variance",
    "evals_variance",
)


class SweepError(RuntimeError):
    """A sweep stopped by a failure outside any pair (a worker died, a plugin is missing)."""


@dataclass(frozen=True)
class Task:
    """One (objective, estimator, grid point, replicate); ``settings`` are the fixed ones."""

    objective: str
    estimator: str
    point: tuple[tuple[str, Number], ...]
    replicate: int
    settings: tuple[tuple[str, object], ...] = ()

    @property
    def key(self) -> str:
        point = ",".join(f"{name}={number_text(value)}" for name, value in self.point)
        return "|".join(
            [
                self.objective,
                self.estimator,
                *([point] if point else []),
                f"replicate={self.replicate}",
            ]
        )

    def seed(self, base: int) -> int:
        return derive_seed(base, self.key)


@dataclass(frozen=True)
class TaskOptions:
    """What every task of a sweep runs with: plain data, shipped to the workers."""

    n_samples: int | None
    seed: int
    device: str
    dtype: str
    chunk_size: int | None
    timing_repeats: int
    plugins: tuple[str, ...] = ()
    exclusive_timing: bool = True
    concurrency: int = 1
    torch_threads: int | None = None

    def manifest(self) -> dict:
        """The run options that decide the numbers: a resumed sweep must repeat them (and its
        fixed settings)."""
        return {
            "n_samples": self.n_samples,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "chunk_size": self.chunk_size,
            "timing_repeats": self.timing_repeats,
        }


def run_task(task: Task, options: TaskOptions) -> dict:
    """Run one task (in whichever process it lands) and return its journal record."""
    for spec in options.plugins:
        load_plugin(spec)
    if options.torch_threads is not None:
        torch.set_num_threads(options.torch_threads)
    timed = options.timing_repeats > 0
    lock = device_lock(_device_key(options.device)) if timed and options.exclusive_timing else None
    with lock if lock is not None else nullcontext():
        comparison = run_comparison(
            [task.objective],
            [task.estimator],
            n_samples=options.n_samples,
            seed=task.seed(options.seed),
            device=options.device,
            dtype=options.dtype,
            settings={**dict(task.settings), **dict(task.point)},
            chunk_size=options.chunk_size,
            timing_repeats=options.timing_repeats,
            timing_guard=None if lock is None else lock.exclusive,
        )
    if comparison.interrupted:
        raise KeyboardInterrupt
    contended = timed and lock is None and options.concurrency > 1
    labels = {"task": task.key, "replicate": task.replicate}
    labels.update({f"param_{name}": value for name, value in task.point})
    rows = [
        {
            **row,
            **labels,
            "timing_contention": contended and not math.isnan(row["time_per_sample_s"]),
            "torch_threads": torch.get_num_threads(),
        }
        for row in comparison.rows
    ]
    details = [{**detail, **labels} for detail in comparison.details]
    return {"task": task.key, "rows": rows, "details": details}


def _device_key(device: str) -> str:
    """The device a task runs on, with its index (``cuda`` → ``cuda:0``), for its lock."""
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(resolved)


def plan(
    objectives: Sequence[str],
    estimators: Sequence[str],
    axes: Sequence[Axis],
    replicates: int,
    settings: Mapping[str, object],
) -> list[Task]:
    """Every task of the sweep, in order: objective, grid point, replicate, estimator.

    Checks every setting of every task before anything runs (as the task will build it), so
    a bad value is an :class:`InputError` naming it, not a failure halfway through.
    """
    names = [axis.name for axis in axes]
    repeated = [name for name in names if names.count(name) > 1]
    if repeated:
        raise InputError(f"axis {repeated[0]!r} is given twice; give each setting one axis")
    fixed = [name for name in names if name in settings]
    if fixed:
        raise InputError(f"{fixed[0]!r} is both swept and set (--set); choose one")
    if replicates < 1:
        raise InputError(f"replicates (--seeds) must be a positive integer, got {replicates}")
    # Routing: every name reaches some chosen objective or estimator (as --set requires).
    instantiate(objectives, estimators, {**settings, **{a.name: a.values[0] for a in axes}})
    tasks: dict[str, Task] = {}
    checked: set[tuple] = set()
    for objective in objectives:
        for full_point in grid(axes):
            for replicate in range(replicates):
                for estimator in estimators:
                    task = Task(
                        objective,
                        estimator,
                        _applying(full_point, objective, estimator),
                        replicate,
                        tuple(_applying(settings, objective, estimator)),
                    )
                    if (objective, estimator, task.point) not in checked:
                        instantiate(
                            [objective], [estimator], {**dict(task.settings), **dict(task.point)}
                        )
                        checked.add((objective, estimator, task.point))
                    tasks.setdefault(task.key, task)
    return list(tasks.values())


def _applying(
    settings: Mapping[str, object], objective: str, estimator: str
) -> tuple[tuple[str, object], ...]:
    """The settings that reach this pair (:func:`gradbench.core.routing.addressed`)."""
    pair = registry.objectives.get(objective), registry.estimators.get(estimator)
    return tuple((key, value) for key, value in settings.items() if addressed(key, *pair))


@dataclass
class SweepResult:
    """The finished tasks of a sweep (every one on success), in plan order."""

    tasks: list[Task]
    records: dict[str, dict]
    axes: tuple[str, ...]
    options: TaskOptions
    executor: str
    reused: int = 0
    interrupted: bool = False
    journal: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def param_columns(self) -> list[str]:
        return [f"param_{name}" for name in self.axes]

    @property
    def finished(self) -> list[Task]:
        return [task for task in self.tasks if task.key in self.records]

    def table(self) -> pd.DataFrame:
        """One row per finished task (see the module's docstring for the columns)."""
        rows = [dict(row) for task in self.finished for row in self.records[task.key]["rows"]]
        for replicate in {row["replicate"] for row in rows}:
            mark_best([row for row in rows if row["replicate"] == replicate])
        base = Comparison(rows=rows).table()
        labels = ["replicate", *self.param_columns, "timing_contention", "torch_threads", "task"]
        extra = pd.DataFrame(rows, columns=labels, index=base.index)
        order = [
            *base.columns[:2],
            *self.param_columns,
            "replicate",
            *base.columns[2:],
            "timing_contention",
            "torch_threads",
            "task",
        ]
        table = pd.concat([base, extra], axis=1)[order]
        return table.astype({"replicate": "Int64", "torch_threads": "Int64"})

    def detail_table(self) -> pd.DataFrame:
        """One row per finished task and gradient coordinate."""
        details = [d for task in self.finished for d in self.records[task.key]["details"]]
        columns = [*DETAIL_COLUMNS, "task", "replicate", *self.param_columns]
        return pd.DataFrame(details, columns=columns).astype({"replicate": "Int64"})

    def aggregate(self) -> pd.DataFrame:
        """One row per (objective, estimator, grid point): mean and standard error over the
        replicates whose status is ok."""
        table = self.table()
        keys = ["objective", "estimator", *self.param_columns]
        rows = []
        for values, group in table.groupby(keys, dropna=False, sort=False):
            ok = group[group["status"] == Status.OK]
            row = dict(zip(keys, values, strict=True))
            row.update(
                status=",".join(sorted(set(group["status"]))),
                replicates=len(ok),
                n_samples=group["n_samples"].iloc[0],
            )
            for metric in METRICS:
                row[f"{metric}_mean"], row[f"{metric}_se"] = _mean_and_se(ok[metric])
            row["bias_p"] = _combined_bias_p(ok["bias_p"])
            row["reference_se_max"] = ok["reference_se_max"].max()
            row["timing_contention"] = bool(ok["timing_contention"].any())
            rows.append(row)
        columns = [*keys, "status", "replicates", "n_samples"]
        columns += [f"{m}_{s}" for m in METRICS for s in ("mean", "se")]
        columns += ["bias_p", "reference_se_max", "timing_contention"]
        return pd.DataFrame(rows, columns=columns)

    def timing_note(self) -> str:
        """How the timings were taken, for the footnote under the summary."""
        if self.options.timing_repeats == 0:
            return "not timed (--repeats 0)"
        if self.table()["timing_contention"].any():
            return (
                f"taken while up to {self.options.concurrency} tasks ran at once"
                " (timing_contention = True in the CSV): compare them with care"
            )
        if self.options.exclusive_timing and self.options.concurrency > 1:
            return "one timed task per device at a time (the others wait while it is timed)"
        return "one task at a time"

    def write_csv(self, path: str | Path) -> None:
        write_atomic(path, self.table().to_csv(index=False))

    def write_aggregate_csv(self, path: str | Path) -> None:
        write_atomic(path, self.aggregate().to_csv(index=False))

    def write_detail_csv(self, path: str | Path) -> None:
        write_atomic(path, self.detail_table().to_csv(index=False))


def _combined_bias_p(p_values: pd.Series) -> float:
    """Whether any replicate's bias test rejects: its smallest p-value × R (Bonferroni over the R
    replicates); NaN when none has one. The mean ‖bias‖ alone is no test: for an unbiased
    estimator it is the noise floor, about √(variance/n)."""
    defined = p_values.dropna()
    return min(1.0, len(defined) * float(defined.min())) if len(defined) else math.nan


def _mean_and_se(values: pd.Series) -> tuple[float, float]:
    """Mean and standard error s/√k of the defined values (NaN where k < 2 for the error)."""
    defined = values.astype(float).dropna()
    if defined.empty:
        return math.nan, math.nan
    mean = float(defined.mean())
    if len(defined) < 2:
        return mean, math.nan
    return mean, float(defined.std(ddof=1)) / math.sqrt(len(defined))


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
) -> SweepResult:
    """Run every task of a sweep and return the finished ones.

    ``objectives`` and ``estimators`` are registered names (default: all); ``axes`` the swept
    settings (:class:`~gradbench.sweep.grid.Axis`, or a mapping of name to values), each routed like
    ``--set``; ``settings`` the fixed ones; ``replicates`` the independent repetitions of
    every grid point. The run options are :func:`~gradbench.api.run_comparison`'s.

    ``executor`` is ``"inprocess"``, ``"process"`` (a pool of ``workers`` processes) or
    ``"dask"`` (a LocalCluster of ``workers``, or the cluster at ``scheduler``), or an
    :class:`~gradbench.sweep.executors.Executor`. ``plugins`` are spec strings (see
    :func:`~gradbench.extend.plugins.load_plugin`) that every worker loads.

    ``journal`` (a directory) stores each task as it finishes; ``resume`` skips the tasks it
    holds, ``overwrite`` deletes it first. ``on_progress(finished, total, task_key)`` is
    called before the first task and after each. Ctrl-C stops the sweep and returns what
    finished with ``interrupted=True``. Raises :class:`InputError` for bad input before
    anything runs, :class:`SweepError` when a worker or the cluster fails.
    """
    if n_samples is not None and n_samples < 1:
        raise InputError(f"n_samples must be a positive integer, got {n_samples}")
    if chunk_size is not None and chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size}")
    if timing_repeats < 0:
        raise InputError(f"timing_repeats must be >= 0, got {timing_repeats}")
    if resume and journal is None:
        raise InputError("resume needs a journal: --resume needs --csv PATH")
    resolve_device(device)
    resolve_dtype(dtype)
    for spec in plugins:
        try:
            load_plugin(spec)
        except PluginError as error:
            raise InputError(str(error)) from None
    chosen_axes = _axes(axes)
    objective_names = list(objectives or registry.objectives.names())
    estimator_names = list(estimators or registry.estimators.names())
    fixed = dict(settings or {})
    tasks = plan(objective_names, estimator_names, chosen_axes, replicates, fixed)
    running = make_executor(executor, workers, scheduler) if isinstance(executor, str) else executor
    options = TaskOptions(
        n_samples, seed, device, dtype, chunk_size, timing_repeats, tuple(plugins), exclusive_timing
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
