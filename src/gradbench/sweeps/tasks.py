"""The tasks of a sweep: one per (objective, estimator, grid point, replicate).

A task's key names it everywhere (the journal, the ``task`` column)::

    gaussian-square|reinforce|k=0.5,sigma=2|replicate=3

and its seed is ``derive_seed(seed, key)``, so a task's numbers depend on the sweep's options
and its key alone: not on the executor, on the order in which tasks finish, or on which other
tasks ran. An axis applies to the tasks it routes to, as ``--set`` does
(:mod:`gradbench.core.routing`); a task's grid point holds only the axes that apply to it.

**Timings.** With ``exclusive_timing`` (the default) each task holds its device's lock
(:mod:`gradbench.sweeps.device_lock`) shared while it computes and exclusive while it times, so
no timing overlaps other work of a sweep on that device and ``timing_contention`` is False.
Without it, or where the lock is unavailable, the timings of a sweep that runs several tasks
at once are marked ``timing_contention = True``. Each task also records its torch thread count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from gradbench.api import ReferenceOptions, instantiate, resolve_device, run_comparison
from gradbench.core.errors import InputError
from gradbench.core.routing import addressed
from gradbench.core.seeding import derive_seed
from gradbench.extend import registry
from gradbench.extend.plugins import load_plugin
from gradbench.sweeps.device_lock import device_lock
from gradbench.sweeps.grid import Axis, Number, grid, number_text


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
    reference: ReferenceOptions = field(default_factory=ReferenceOptions)

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
            **self.reference.manifest(),
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
            reference=options.reference,
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
