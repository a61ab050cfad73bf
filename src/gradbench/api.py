"""The Python API: choose objectives and estimators by name, run every pair, get the record."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from gradbench.core.errors import InputError, did_you_mean
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.core.routing import Side, declared, reaches, split_key
from gradbench.engine.reference import ReferencePlan, reference_estimator
from gradbench.engine.reference_cache import default_cache_dir
from gradbench.engine.run import DEVICES, DTYPES, SEED_RANGE, RunConfig, RunResult, run_pair
from gradbench.extend import registry
from gradbench.extend.conformance import ConformanceReport, check_estimator
from gradbench.extend.objective_conformance import check_objective
from gradbench.records.comparison import Comparison, build_comparison
from gradbench.records.provenance import provenance


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) → a usable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device {name!r}: CUDA is not available (torch {torch.__version__});"
                " valid choices here: cpu, auto"
            )
        try:
            device = torch.device(name)
        except RuntimeError:
            raise InputError(
                f"unknown device {name!r}; valid choices: {', '.join(DEVICES)}"
            ) from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return device
    raise InputError(f"unknown device {name!r}; valid choices: {', '.join(DEVICES)}")


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise InputError(f"unknown dtype {name!r}; valid choices: {', '.join(DTYPES)}")
    return DTYPES[name]


@dataclass(frozen=True)
class ReferenceOptions:
    """How the reference of an objective without one of its own is estimated
    (:mod:`gradbench.engine.reference`), as plain data a sweep ships to its workers: a fixed
    number of estimates (None: sized to each run), the estimator by registered name (None: the
    default choice; its options come from ``NAME.KEY`` settings), and the disk cache (on, at
    ``cache_dir`` or :func:`~gradbench.engine.reference_cache.default_cache_dir`)."""

    samples: int | None = None
    estimator: str | None = None
    cache: bool = True
    cache_dir: str | None = None

    def plan(self, settings: Mapping[str, object] | None = None) -> ReferencePlan:
        """The engine's plan; raises :class:`InputError` for an unknown estimator name or a
        sample count below one."""
        if self.samples is not None and self.samples < 1:
            raise InputError(f"reference samples must be a positive integer, got {self.samples}")
        estimator = None
        if self.estimator is not None:
            own = {k: v for k, v in (settings or {}).items() if k.startswith(f"{self.estimator}.")}
            estimator = build_estimator(self.estimator, own)
        cache_dir = None
        if self.cache:
            cache_dir = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
        return ReferencePlan(estimator=estimator, samples=self.samples, cache_dir=cache_dir)

    def manifest(self) -> dict:
        """What decides a reference's numbers (the cache only saves time)."""
        return {"reference_samples": self.samples, "reference_estimator": self.estimator}


def check_references(objectives: Sequence[Objective], plan: ReferencePlan) -> None:
    """Refuse, before anything runs, an objective without a reference of its own that no
    estimator can estimate, or a reference estimator that cannot run on it."""
    for objective in objectives:
        if not objective.gives_reference():
            reference_estimator(objective, plan.estimator)


def _split_settings(
    settings: Mapping[str, object], objective_names: Sequence[str], estimator_names: Sequence[str]
) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    """Each setting by the chosen objective or estimator it reaches (:mod:`gradbench.core.routing`);
    a key that reaches none of them is an :class:`InputError` naming the valid choices."""
    objective_classes = {name: registry.objectives.get(name) for name in objective_names}
    estimator_classes = {name: registry.estimators.get(name) for name in estimator_names}
    per_objective: dict[str, dict[str, object]] = {name: {} for name in objective_names}
    per_estimator: dict[str, dict[str, object]] = {name: {} for name in estimator_names}
    for key, value in settings.items():
        owner, name = split_key(key)
        objectives = [n for n, c in objective_classes.items() if reaches(key, c, Side.OBJECTIVE)]
        estimators = [n for n, c in estimator_classes.items() if reaches(key, c, Side.ESTIMATOR)]
        if objectives:
            estimators = []  # NAME.KEY where NAME is both: the objective, as documented
        for target in objectives:
            per_objective[target][name] = value
        for target in estimators:
            per_estimator[target][name] = value
        if objectives or estimators:
            continue
        if owner is not None:
            chosen = [*objective_names, *estimator_names]
            raise InputError(
                f"setting {key!r}: {owner!r} is not a chosen objective or estimator"
                f"{did_you_mean(owner, chosen)}; chosen: {', '.join(chosen)}"
            )
        declarations = (declared(c, Side.OBJECTIVE) for c in objective_classes.values())
        valid = sorted(set().union(*declarations))
        raise InputError(
            f"setting {key!r}: no chosen objective has it{did_you_mean(key, valid)};"
            f" valid settings: {', '.join(valid)}"
            " (estimator options are set as ESTIMATOR.KEY, e.g. fd.step)"
        )
    return per_objective, per_estimator


#: ``on_progress(done, total, label)``: units of work done (fractional while one runs) of total.
ProgressCallback = Callable[[float, int, str], None]

ObjectiveChoice = str | Objective
EstimatorChoice = str | Estimator


def instantiate(
    objectives: Sequence[ObjectiveChoice] | None = None,
    estimators: Sequence[EstimatorChoice] | None = None,
    settings: Mapping[str, object] | None = None,
) -> tuple[list[Objective], list[Estimator]]:
    """The chosen objectives and estimators, by registered name or as instances.

    None chooses every registered one. Names are instantiated with the ``settings`` routed to
    them (see :func:`run_comparison`); instances are used as they are.
    """
    objective_choices = list(objectives or _default_suite())
    estimator_choices = list(estimators or registry.estimators.names())
    objective_names = _unique_names(objective_choices, registry.objectives)
    estimator_names = _unique_names(estimator_choices, registry.estimators)
    per_objective, per_estimator = _split_settings(settings or {}, objective_names, estimator_names)
    return (
        [
            c if isinstance(c, Objective) else registry.objectives.get(c)(**per_objective[c])
            for c in dict.fromkeys(objective_choices)
        ],
        [
            c if isinstance(c, Estimator) else registry.estimators.get(c)(**per_estimator[c])
            for c in dict.fromkeys(estimator_choices)
        ],
    )


def _default_suite() -> list[str]:
    """The objectives a comparison runs when none is named: every registered one that is
    :attr:`~gradbench.core.objective.Objective.in_default_suite`."""
    objectives = registry.objectives
    return [name for name in objectives.names() if objectives.get(name).in_default_suite]


def _unique_names(choices: Sequence[object], known: registry.Registry) -> list[str]:
    """The names among ``choices``, each checked against the registry, in order, once."""
    names = [c for c in dict.fromkeys(choices) if isinstance(c, str)]
    for name in names:
        known.get(name)
    return names


def check_run_options(
    n_samples: int | None, chunk_size: int | None, timing_repeats: int, seed: int = 0
) -> None:
    """Refuse run options out of range with an :class:`InputError` naming the value."""
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise InputError(
            f"seed {seed} is out of range; a seed is a 64-bit integer, from {SEED_RANGE[0]}"
            f" to {SEED_RANGE[1]}"
        )
    if n_samples is not None and n_samples < 1:
        raise InputError(f"n_samples must be a positive integer, got {n_samples}")
    if chunk_size is not None and chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size}")
    if timing_repeats < 0:
        raise InputError(f"timing_repeats must be >= 0, got {timing_repeats}")


def run_comparison(
    objectives: Sequence[ObjectiveChoice] | None = None,
    estimators: Sequence[EstimatorChoice] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    settings: Mapping[str, object] | None = None,
    chunk_size: int | None = None,
    timing_repeats: int = RunConfig.timing_repeats,
    on_result: Callable[[RunResult], None] | None = None,
    arguments: dict | None = None,
    timing_guard: Callable[[], AbstractContextManager[object]] | None = None,
    on_progress: ProgressCallback | None = None,
    reference: ReferenceOptions | None = None,
) -> Comparison:
    """Run every (objective, estimator) pair and return the full record.

    ``objectives`` and ``estimators`` are registered names or instances (default: all).
    ``n_samples`` estimates per pair; None: each objective's ``default_samples``, else
    :attr:`RunConfig.n_samples`.

    ``settings`` maps ``KEY`` (applied to every chosen objective that declares it) or
    ``NAME.KEY`` (one objective or estimator) to a value. ``on_result`` is called after each
    pair, ``on_progress(done, total, pair)`` after each chunk of estimates with the pairs done
    (a fraction for the one running) out of the total; ``arguments`` (the command line, say)
    is saved in the provenance; ``timing_guard`` is entered around each pair's timed repeats;
    ``reference`` says how references without a closed form are estimated (default:
    :class:`ReferenceOptions`). Ctrl-C stops the loop and returns what finished, with
    ``interrupted=True``.
    Raises :class:`~gradbench.core.errors.InputError` for bad input before anything runs.
    """
    check_run_options(n_samples, chunk_size, timing_repeats, seed)
    reference_plan = (reference or ReferenceOptions()).plan(settings)
    config = RunConfig(
        n_samples=n_samples or RunConfig.n_samples,
        seed=seed,
        device=resolve_device(device),
        dtype=resolve_dtype(dtype),
        chunk_size=chunk_size,
        timing_repeats=timing_repeats,
        timing_guard=timing_guard,
        reference=reference_plan,
    )
    chosen_objectives, chosen_estimators = instantiate(objectives, estimators, settings)
    check_references(chosen_objectives, reference_plan)
    results: list[RunResult] = []
    interrupted = False
    total = len(chosen_objectives) * len(chosen_estimators)
    try:
        for objective in chosen_objectives:
            samples = n_samples or objective.default_samples or RunConfig.n_samples
            for estimator in chosen_estimators:
                pair = f"{objective.name} × {estimator.name}"
                on_chunk = _pair_progress(on_progress, len(results), total, samples, pair)
                pair_config = replace(config, n_samples=samples, on_chunk=on_chunk)
                results.append(run_pair(objective, estimator, pair_config))
                if on_result is not None:
                    on_result(results[-1])
        if on_progress is not None:
            on_progress(total, total, "")
    except KeyboardInterrupt:
        interrupted = True
    record = provenance(config.device, config.dtype, seed, n_samples, arguments)
    return build_comparison(results, config, record, interrupted)


def _pair_progress(
    on_progress: ProgressCallback | None, done: int, total: int, samples: int, pair: str
) -> Callable[[int], None] | None:
    """Report the start of a pair, and return the engine's chunk callback that reports the
    fraction of its ``samples`` estimates added (None without ``on_progress``)."""
    if on_progress is None:
        return None
    on_progress(done, total, pair)
    return lambda added: on_progress(done + added / samples, total, pair)


def build_estimator(name: str, options: Mapping[str, object] | None = None) -> Estimator:
    """The registered estimator ``name`` with ``options`` (keys ``KEY`` or ``NAME.KEY``)."""
    cls = registry.estimators.get(name)
    plain = {key.removeprefix(f"{name}."): value for key, value in (options or {}).items()}
    return cls(**plain)


def check(
    subject: EstimatorChoice | ObjectiveChoice,
    n_samples: int = 100_000,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    options: Mapping[str, object] | None = None,
    reference: ReferenceOptions | None = None,
) -> ConformanceReport:
    """Run the conformance suite on one estimator (:mod:`gradbench.extend.conformance`) or one
    objective (:mod:`gradbench.extend.objective_conformance`), an instance or a registered
    name; ``options`` are its options or settings (``KEY`` or ``NAME.KEY``), ``reference``
    how an objective's estimated reference is made."""
    if n_samples < 2:
        raise InputError(f"n_samples must be at least 2, got {n_samples}")
    run_device, run_dtype = resolve_device(device), resolve_dtype(dtype)
    if isinstance(subject, str) and subject in registry.objectives.names():
        if subject in registry.estimators.names():
            raise InputError(
                f"{subject!r} names both an estimator and an objective; pass an instance"
            )
        plain = {k.removeprefix(f"{subject}."): v for k, v in (options or {}).items()}
        subject = registry.objectives.get(subject)(**plain)
    if isinstance(subject, Objective):
        plan = (reference or ReferenceOptions()).plan(options)
        check_references([subject], plan)
        return check_objective(subject, n_samples, seed, run_device, run_dtype, plan)
    if not isinstance(subject, Estimator):
        subject = _known_subject(subject, options)
    return check_estimator(subject, n_samples, seed, run_device, run_dtype)


def _known_subject(name: str, options: Mapping[str, object] | None) -> Estimator:
    """The estimator ``name``; an unknown name is an InputError listing both kinds."""
    if name in registry.estimators.names():
        return build_estimator(name, options)
    known = [*registry.estimators.names(), *registry.objectives.names()]
    raise InputError(
        f"unknown estimator or objective {name!r}{did_you_mean(name, known)}; valid:"
        f" {', '.join(known)}"
    )


def compare(
    objectives: Sequence[ObjectiveChoice] | None = None,
    estimators: Sequence[EstimatorChoice] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    settings: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """Like :func:`run_comparison`, returning only the main table (the CSV's columns)."""
    return run_comparison(objectives, estimators, n_samples, seed, device, dtype, settings).table()
