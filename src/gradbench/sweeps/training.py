"""``gradbench train`` on the sweep machinery: one task per trajectory (objective, estimator,
replicate), journalled as it finishes, on any executor.

A task's key is ``objective|estimator|replicate=r`` and its seed ``derive_seed(seed, key)``, so a
trajectory's numbers depend on the run's options and its key alone: the same on every executor
and in whatever order tasks finish (their timings, of course, differ). ``resume`` skips the
trajectories the journal holds (the journal sits beside ``--csv``, as a sweep's does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from gradbench.core.seeding import derive_seed
from gradbench.engine.run import RunConfig
from gradbench.engine.training import OPTIMIZERS, TrainConfig, train_trajectory
from gradbench.extend import registry
from gradbench.extend.plugins import load_plugin
from gradbench.records.provenance import provenance
from gradbench.records.training import TrainingResult, trajectory_rows
from gradbench.sweeps.executors import Executor, make_executor
from gradbench.sweeps.journal import Journal
from gradbench.sweeps.orchestration import SweepError, check_task_inputs


@dataclass(frozen=True)
class TrainTask:
    """One trajectory: an objective, an estimator, a replicate."""

    objective: str
    estimator: str
    replicate: int

    @property
    def key(self) -> str:
        return f"{self.objective}|{self.estimator}|replicate={self.replicate}"

    def seed(self, base: int) -> int:
        return derive_seed(base, self.key)


@dataclass(frozen=True)
class TrainOptions:
    """What every trajectory runs with: plain data, shipped to the workers."""

    steps: int
    batch: int
    optimizer: str
    lr: float
    eval_every: int
    basket: tuple[str, ...]
    n_samples: int
    seed: int
    device: str
    dtype: str
    timing_repeats: int
    settings: tuple[tuple[str, object], ...] = ()
    plugins: tuple[str, ...] = ()
    reference: ReferenceOptions = field(default_factory=ReferenceOptions)

    def manifest(self) -> dict:
        """The options that decide the numbers: a resumed run must repeat them."""
        return {
            "steps": self.steps,
            "batch": self.batch,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "eval_every": self.eval_every,
            "basket": list(self.basket),
            "n_samples": self.n_samples,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "timing_repeats": self.timing_repeats,
            "plugins": list(self.plugins),
            "settings": {k: str(v) for k, v in self.settings},
            **self.reference.manifest(),
        }

    def config(self) -> TrainConfig:
        settings = dict(self.settings)
        run = RunConfig(
            n_samples=self.n_samples,
            seed=self.seed,
            device=resolve_device(self.device),
            dtype=resolve_dtype(self.dtype),
            timing_repeats=self.timing_repeats,
            # Each checkpoint's θ is new: its estimated reference would never be read back.
            reference=replace(self.reference, cache=False).plan(settings),
        )
        return TrainConfig(self.steps, self.batch, self.optimizer, self.lr, self.eval_every, run)


def run_train_task(task: TrainTask, options: TrainOptions) -> dict:
    """Run one trajectory (in whichever process it lands) and return its journal record."""
    for spec in options.plugins:
        load_plugin(spec)
    settings = dict(options.settings)
    names = list(dict.fromkeys([task.estimator, *options.basket]))
    (objective,), built = instantiate([task.objective], names, settings)
    # One instance per name: the trained estimator is its own basket member, measured in its
    # trajectory's state.
    by_name = dict(zip(names, built, strict=True))
    estimator, basket = by_name[task.estimator], [by_name[name] for name in options.basket]
    config = options.config()
    trajectory = train_trajectory(objective, estimator, basket, config, task.seed(options.seed))
    record = provenance(config.run.device, config.run.dtype, options.seed, options.n_samples, None)
    checkpoints, measured, thetas = trajectory_rows(trajectory, task.replicate, config, record)
    return {"task": task.key, "checkpoints": checkpoints, "basket": measured, "theta": thetas}


ProgressCallback = Callable[[int, int, str | None], None]


def train(
    objectives: Sequence[str] | None = None,
    estimators: Sequence[str] | None = None,
    basket: Sequence[str] | None = None,
    replicates: int = 1,
    steps: int = 100,
    batch: int = 16,
    optimizer: str = "sgd",
    lr: float = 0.01,
    eval_every: int = 10,
    n_samples: int = 10_000,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    settings: Mapping[str, object] | None = None,
    timing_repeats: int = RunConfig.timing_repeats,
    executor: str | Executor = "inprocess",
    workers: int | None = None,
    scheduler: str | None = None,
    plugins: Sequence[str] = (),
    journal: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    reference: ReferenceOptions | None = None,
    on_progress: ProgressCallback | None = None,
) -> TrainingResult:
    """Train θ with each estimator on each objective, ``replicates`` trajectories each, and
    measure the ``basket`` (default: the trained estimators) at every checkpoint
    (:mod:`gradbench.engine.training`). Raises :class:`InputError` for bad input before
    anything runs; Ctrl-C returns what finished with ``interrupted=True``."""
    check_run_options(n_samples, None, timing_repeats, seed)
    for name, value, least in (
        ("steps", steps, 1),
        ("batch", batch, 1),
        ("eval_every", eval_every, 1),
        ("seeds", replicates, 1),
    ):
        if value < least:
            raise InputError(f"--{name.replace('_', '-')} {value}: must be at least {least}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"--lr {lr}: must be a positive number")
    specs = check_task_inputs(resume, journal, device, dtype, plugins)
    objective_names = list(objectives or registry.objectives.names())
    estimator_names = list(dict.fromkeys(estimators or registry.estimators.names()))
    basket_names = list(dict.fromkeys(basket or estimator_names))
    fixed = dict(settings or {})
    chosen = instantiate(objective_names, [*estimator_names, *basket_names], fixed)[0]
    reference = reference or ReferenceOptions()
    check_references(chosen, reference.plan(fixed))
    options = TrainOptions(
        steps,
        batch,
        optimizer,
        lr,
        eval_every,
        tuple(basket_names),
        n_samples,
        seed,
        device,
        dtype,
        timing_repeats,
        tuple(fixed.items()),
        specs,
        reference,
    )
    tasks = [
        TrainTask(objective, estimator, replicate)
        for objective in objective_names
        for estimator in estimator_names
        for replicate in range(replicates)
    ]
    running = make_executor(executor, workers, scheduler) if isinstance(executor, str) else executor
    record = provenance(resolve_device(device), resolve_dtype(dtype), seed, n_samples, None)
    result = TrainingResult(provenance=record)
    records: dict[str, dict] = {}
    try:
        with running:
            store = None
            if journal is not None:
                store = Journal.start(journal, options.manifest(), resume, overwrite)
                planned = {task.key for task in tasks}
                records.update((k, r) for k, r in store.finished().items() if k in planned)
            todo = [task for task in tasks if task.key not in records]
            if on_progress is not None:
                on_progress(len(records), len(tasks), None)
            for finished in running.run(partial(run_train_task, options=options), todo):
                if store is not None:
                    store.append(finished)
                records[finished["task"]] = finished
                if on_progress is not None:
                    on_progress(len(records), len(tasks), finished["task"])
    except KeyboardInterrupt:
        result.interrupted = True
    except (InputError, SweepError):
        raise
    except Exception as error:  # a worker or the cluster failed: keep what finished
        raise SweepError(
            f"{type(error).__name__}: {error}".replace("\n", " ")
            + f" ({len(records)} of {len(tasks)} trajectories finished"
            + (f"; they are kept in {journal}: finish with --resume)" if journal else ")")
        ) from error
    for task in tasks:  # in plan order, whatever order they finished in
        if task.key in records:
            result.checkpoints.extend(records[task.key]["checkpoints"])
            result.basket.extend(records[task.key]["basket"])
            result.thetas.extend(records[task.key]["theta"])
    return result
