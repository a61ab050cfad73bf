"""Run one (objective, estimator) pair: per-sample estimates in chunks → statistics and timing.

The estimates of a run are drawn in chunks of at most ``chunk_size`` rows from one
``torch.Generator`` seeded by (seed, objective, estimator), so a run's numbers do not depend on
which other pairs ran or in what order. Each chunk is reduced on the device into the float64
accumulators of :class:`~gradbench.stats.accumulator.GradientStatistics` and then dropped: memory is
bounded by the chunk, not by n. On a GPU the loop reads nothing back to the host (objectives that
sample through torch's global generator, see :mod:`gradbench.objectives.implicit`, read one
seed per chunk).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective, Reference
from gradbench.core.params import ParamLayout, Params
from gradbench.core.seeding import derive_seed
from gradbench.core.status import Status
from gradbench.engine.memory import chunk_budget, describe_bytes
from gradbench.engine.reference import (
    MAX_ROWS_PER_CALL,
    ReferencePlan,
    estimate_reference,
    reference_dtype,
    reference_estimator,
    run_variance_of,
)
from gradbench.engine.timing import ChunkClock, Timing, time_per_sample, timing_warning
from gradbench.stats.accumulator import DEFAULT_GROUPS, GradientStatistics, state_bytes
from gradbench.stats.intervals import interval_is_trusted, samples_needed
from gradbench.stats.summary import PER_SAMPLE_COLUMNS, Summary

#: Chunks are a multiple of this many rows: CPU normal draws of 16 values are then the same
#: however n is split into chunks.
ROW_ALIGNMENT = 16
#: Bytes of temporaries per element of x or θ that one cost evaluation holds (autograd included).
_BYTES_PER_ELEMENT_FACTOR = 8
#: The timing phase costs at most this share of the measuring pass, or MIN_TIMING_S seconds,
#: whichever is more (see timing_batch).
TIMING_SHARE = 0.25
MIN_TIMING_S = 0.015
#: Below this many usable estimates the variance interval is flagged as unreliable.
MIN_RELIABLE_SAMPLES = 1000


@dataclass(frozen=True)
class RunConfig:
    """How to run: sample count, seed, device, dtype, chunking and timing."""

    n_samples: int = 100_000
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    chunk_size: int | None = None
    #: Timed calls after one warm-up; 0 skips timing (time columns are then NaN).
    timing_repeats: int = 5
    #: Bytes a chunk may use; None: the device's default, capped by its free memory.
    memory_budget: int | None = None
    #: Entered around the warm-up and timed repeats: a sweep's per-device lock, say.
    timing_guard: Callable[[], AbstractContextManager[object]] | None = None
    #: Called after each chunk with the estimates added so far (a progress display, say).
    on_chunk: Callable[[int], None] | None = None
    #: How the reference of an objective without one of its own is estimated.
    reference: ReferencePlan = field(default_factory=ReferencePlan)


@dataclass
class RunResult:
    """The outcome of one pair; ``summary`` and ``timing`` are set when ``status`` is
    :attr:`Status.OK`."""

    objective: Objective
    estimator: Estimator
    status: Status
    reason: str = ""
    grad_dim: int = 0
    labels: list[str] = field(default_factory=list)
    evals_per_sample: int = 0
    n_samples: int = 0
    run_seed: int = 0
    chunk_size: int = 0
    summary: Summary | None = None
    timing: Timing | None = None
    warnings: list[str] = field(default_factory=list)
    #: How the reference was obtained (the ``reference`` column).
    reference_method: str = ""
    #: The estimator of an estimated reference and its estimates ("" and 0 otherwise).
    reference_estimator: str = ""
    reference_samples: int = 0
    #: False when the estimator made its own reference: its bias test cannot see its bias.
    bias_informative: bool = True


class MemoryBudgetError(ValueError):
    """Not even the smallest aligned chunk of estimates fits the memory budget."""


def choose_chunk_size(
    objective: Objective, params: Params, evals_per_sample: int, config: RunConfig
) -> int:
    """Rows per chunk: ``config.chunk_size`` if given, else what fits the memory budget beside
    the statistics' own state, rounded down to a multiple of :data:`ROW_ALIGNMENT`.

    Raises :class:`MemoryBudgetError` up front when not even :data:`ROW_ALIGNMENT` rows fit:
    smaller chunks would draw other random numbers than the aligned ones, and a θ that large
    should be a deliberate choice (``--chunk-size``)."""
    if config.chunk_size is not None:
        return max(1, min(config.chunk_size, config.n_samples))
    elements = objective.elements_per_evaluation(params)
    grad_dim = ParamLayout.of(params).size
    itemsize = torch.empty((), dtype=config.dtype).element_size()
    per_estimate = _BYTES_PER_ELEMENT_FACTOR * itemsize * evals_per_sample * elements
    per_estimate += 8 * 8 * (grad_dim + PER_SAMPLE_COLUMNS)  # float64 statistics temporaries
    if config.device.type != "cpu":  # the one-hot group matrix of the GPU path, bool and float64
        per_estimate += 9 * (DEFAULT_GROUPS + 1)
    budget = chunk_budget(config.device, config.memory_budget)
    state = state_bytes(grad_dim, config.n_samples)
    rows = (budget - state) // per_estimate
    smallest = min(ROW_ALIGNMENT, config.n_samples)
    if rows < smallest:
        raise MemoryBudgetError(
            f"{smallest} estimates of {grad_dim} coordinates need"
            f" {describe_bytes(smallest * per_estimate)} and the statistics"
            f" {describe_bytes(state)}, more than the {describe_bytes(budget)} a chunk may use"
            f" on {config.device.type}; lower the size of θ (--set), or pass --chunk-size N to"
            " run anyway (chunks under 16 rows draw other random numbers than aligned ones)"
        )
    if rows >= ROW_ALIGNMENT:
        rows -= rows % ROW_ALIGNMENT
    return max(1, min(config.n_samples, rows))


def _halved(rows: int) -> int:
    """Half a chunk that did not fit, a multiple of :data:`ROW_ALIGNMENT` while it can be."""
    half = rows // 2
    return max(1, half - half % ROW_ALIGNMENT if half >= ROW_ALIGNMENT else half)


def timing_batch(chunk: int, n_samples: int, seconds_per_estimate: float, repeats: int) -> int:
    """Estimates per timed call when the measuring pass cannot be its own timing: a chunk
    (at most n), or fewer rows where the warm-up and ``repeats`` calls of a chunk would cost
    more than :data:`TIMING_SHARE` of the measuring pass (and more than
    :data:`MIN_TIMING_S`), rounded down to :data:`ROW_ALIGNMENT` rows. Cheap pairs are timed
    on whole chunks, so per-call overhead stays amortised; costly ones (finite differences of
    a large θ) on batches whose calls are still long."""
    batch = min(chunk, n_samples)
    budget = max(TIMING_SHARE * seconds_per_estimate * n_samples, MIN_TIMING_S)
    affordable = int(budget / ((repeats + 1) * seconds_per_estimate))
    if affordable >= batch:
        return batch
    return max(min(batch, ROW_ALIGNMENT), affordable - affordable % ROW_ALIGNMENT)


def run_pair(objective: Objective, estimator: Estimator, config: RunConfig) -> RunResult:
    """Measure ``estimator`` on ``objective``; never raises for a failing pair."""
    params = {
        k: v.to(device=config.device, dtype=config.dtype) for k, v in objective.parameters().items()
    }
    layout = ParamLayout.of(params)
    result = RunResult(
        objective,
        estimator,
        status=Status.OK,
        grad_dim=layout.size,
        labels=layout.labels(),
        evals_per_sample=estimator.evals_per_sample(layout.size),
        n_samples=config.n_samples,
        run_seed=derive_seed(config.seed, objective.name, estimator.name),
    )
    if reason := estimator.skip_reason(objective):
        result.status, result.reason = Status.SKIPPED, reason
        return result
    try:
        _measure(objective, estimator, params, config, result)
    except Exception as error:  # one failing pair must not stop the others
        result.status, result.reason = Status.FAILED, f"{type(error).__name__}: {error}"
        result.summary = result.timing = None
    return result


def _measure(
    objective: Objective,
    estimator: Estimator,
    params: Params,
    config: RunConfig,
    result: RunResult,
) -> None:
    # The reference is taken at the parameters as the run's dtype represents them.
    exact_params = {k: v.double().cpu() for k, v in params.items()}
    own = objective.has_own_reference()
    reference = objective.reference_at(exact_params) if own else None
    result.reference_method = objective.reference_method if own else ""
    analytic = objective.analytic_gradient(exact_params)
    offset = None if analytic is None else analytic.to(config.device, config.dtype)
    _check_cost_shape(objective, params, config.device)
    generator = torch.Generator(device=config.device).manual_seed(result.run_seed)
    chunk = choose_chunk_size(objective, params, result.evals_per_sample, config)

    def estimates(m: int, source: torch.Generator = generator) -> Tensor:
        g = estimator.estimate(objective, params, m, source)
        _check_output(estimator.name, g, (m, result.grad_dim), config)
        return g if offset is None else g + offset

    statistics: GradientStatistics | None = None
    clock = ChunkClock(config.device)
    initial = generator.get_state()
    started = time.perf_counter()
    while statistics is None or statistics.added < config.n_samples:
        added = 0 if statistics is None else statistics.added
        m = min(chunk, config.n_samples - added)
        try:
            with clock.timing(m):
                chunk_estimates = estimates(m)
            if reference is None:  # sized against this first chunk's noise
                paused = time.perf_counter()
                reference = _estimated_reference(
                    objective, exact_params, chunk_estimates, config, result
                )
                started += time.perf_counter() - paused
            if statistics is None:
                statistics = GradientStatistics(
                    reference.gradient.to(config.device),
                    config.n_samples,
                    reference.standard_error,
                    reference.degrees_of_freedom,
                )
            statistics.add(chunk_estimates)
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError from torch 2.5 on
            if m == 1:
                raise
            # Start the pass again with half the chunk, from the generator's first state: the
            # run then is the one its recorded chunk size makes (out of memory comes early).
            chunk_estimates = statistics = None  # let the failed chunk's memory go first
            chunk = _halved(m)
            generator.set_state(initial)
            clock.forget()
            started = time.perf_counter()
            continue
        if config.on_chunk is not None:
            config.on_chunk(statistics.added)
    result.chunk_size = chunk
    result.summary = statistics.summary()  # reads the device: the loop's work is done
    seconds_per_estimate = (time.perf_counter() - started) / config.n_samples
    if result.summary.n_used == 0:
        raise ValueError(
            f"all {config.n_samples} estimates of {estimator.name} were NaN or Inf; "
            "try --dtype float64 or other settings (--set)"
        )
    if config.timing_repeats > 0:
        result.timing = _timing(clock, estimates, chunk, seconds_per_estimate, config, result)
    result.warnings = [
        *result.warnings,
        *_warnings(result.summary, result.timing, result.labels, competes=estimator.unbiased),
    ]


def _estimated_reference(
    objective: Objective,
    exact_params: Params,
    first_chunk: Tensor,
    config: RunConfig,
    result: RunResult,
) -> Reference:
    """The estimated reference of an objective without one of its own, sized for this run
    (:mod:`gradbench.engine.reference`), recorded on ``result``."""
    estimator = reference_estimator(objective, config.reference.estimator)
    rows = choose_chunk_size(
        objective,
        exact_params,
        estimator.evals_per_sample(result.grad_dim),
        replace(config, dtype=reference_dtype(config.device), n_samples=MAX_ROWS_PER_CALL),
    )
    estimated = estimate_reference(
        objective,
        estimator,
        exact_params,
        config.reference,
        config.device,
        rows,
        run_variance_of(first_chunk),
        config.n_samples,
        result.labels,
    )
    result.reference_method = estimated.description
    result.reference_estimator = estimated.estimator.name
    result.reference_samples = estimated.samples
    result.bias_informative = not estimated.made_by(result.estimator)
    if estimated.warning:
        result.warnings.append(estimated.warning)
    return estimated.reference


def _check_cost_shape(objective: Objective, params: Params, device: torch.device) -> None:
    """Refuse, before any estimate, a cost that does not return ``[*S]`` for draws ``[*S,
    *event]`` (two draws, then with an extra leading dim): an estimator would otherwise
    broadcast it silently into a wrong estimate. Draws on a generator of its own."""
    generator = torch.Generator(device=device).manual_seed(0)
    x = objective.sample(params, 2, generator)
    for draws, expected in ((x, (2,)), (x.unsqueeze(0), (1, 2))):
        with torch.no_grad():
            shape = tuple(objective.cost(draws, params).shape)
        if shape != expected:
            raise ValueError(
                f"{objective.name}.cost returned shape {shape} for draws of shape"
                f" {tuple(draws.shape)}, expected {expected}: one cost per draw, the draw's"
                " event dims reduced"
            )


def _timing(
    clock: ChunkClock,
    estimates: Callable[..., Tensor],
    chunk: int,
    seconds_per_estimate: float,
    config: RunConfig,
    result: RunResult,
) -> Timing:
    """The time per estimate: from the measuring pass's own chunks where it has at least
    ``timing_repeats`` whole chunks after the first (a warm-up), at no extra cost; else from
    ``timing_repeats`` calls of :func:`timing_batch` estimates on a generator of their own,
    after a warm-up, inside ``config.timing_guard`` (a sweep's exclusive device lock, which
    the measuring pass does not hold)."""
    if config.timing_guard is None and (timing := clock.timing_of(chunk, config.timing_repeats)):
        return timing
    batch = timing_batch(chunk, config.n_samples, seconds_per_estimate, config.timing_repeats)
    timing_seed = derive_seed(config.seed, result.objective.name, result.estimator.name, "timing")
    timing_generator = torch.Generator(device=config.device).manual_seed(timing_seed)
    with (config.timing_guard or nullcontext)():
        return time_per_sample(
            lambda: estimates(batch, timing_generator), batch, config.timing_repeats, config.device
        )


def _check_output(name: str, estimates: Tensor, shape: tuple[int, int], config: RunConfig) -> None:
    """Refuse estimates of the wrong shape, dtype or device (the pair then fails)."""
    if tuple(estimates.shape) != shape:
        raise ValueError(f"{name} returned shape {tuple(estimates.shape)}, expected {shape}")
    if estimates.dtype != config.dtype:
        raise ValueError(f"{name} returned {estimates.dtype}, expected {config.dtype}")
    if estimates.device.type != config.device.type:
        raise ValueError(
            f"{name} returned a tensor on {estimates.device}, expected {config.device}"
        )


#: A coordinate interval wider than this factor says one group dominates its jackknife.
WILD_INTERVAL = 100.0


def _unreliable_coordinates(summary: Summary, labels: list[str]) -> str:
    """The coordinates (three named at most) whose variance is positive but whose interval is
    undefined or wider than :data:`WILD_INTERVAL`; ``""`` when there are none."""
    low, high = summary.coordinate_variance_ci
    positive = summary.coordinate_variance > 0
    wild = positive & (low.isnan() | high.isnan() | (high > WILD_INTERVAL * low))
    names = [label for label, flag in zip(labels, wild.tolist(), strict=True) if flag]
    if not names:
        return ""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def _warnings(
    summary: Summary, timing: Timing | None, labels: list[str], competes: bool
) -> list[str]:
    """Checks on a finished run, each saying what to do about it; ``competes``: the estimator
    is unbiased by design, so a verdict on its interval also says it earns no ★."""
    notes = []
    if summary.n_nonfinite:
        total = summary.n_nonfinite + summary.n_used
        notes.append(
            f"{summary.n_nonfinite} of {total} estimates had NaN/Inf and were left out;"
            " check the objective's settings (--set) or use --dtype float64"
        )
    if summary.n_used < MIN_RELIABLE_SAMPLES:
        notes.append(
            f"only {summary.n_used} estimates: the variance interval is unreliable;"
            f" use --samples {MIN_RELIABLE_SAMPLES * 10} or more"
        )
    kurtosis = summary.variance_kurtosis
    low, high = summary.variance_ci
    reliable = summary.n_used >= MIN_RELIABLE_SAMPLES  # else the warning above says enough
    if reliable and not interval_is_trusted(summary.n_used, kurtosis):
        needed = samples_needed(kurtosis)
        drawn = summary.n_used + summary.n_nonfinite  # --samples counts NaN estimates too
        advice = (
            "one group of estimates holds its variance; raise --samples a lot"
            if needed is None
            else f"use --samples {math.ceil(needed * drawn / summary.n_used)} or more"
        )
        notes.append(
            f"kurtosis κ̂ ≈ {kurtosis:.3g} is too heavy for n = {summary.n_used}: the variance"
            " interval may cover less than 95%"
            + (" and earns no ★" if competes else "")
            + f"; {advice}"
        )
    elif low > 0 and high / low > 2:
        notes.append(
            "the variance interval spans more than a factor 2 (heavy tails);"
            " raise --samples for a stable variance"
        )
    if wild := _unreliable_coordinates(summary, labels):
        notes.append(
            f"the variance interval of {wild} is undefined or spans more than a factor"
            f" {WILD_INTERVAL:g}: one group of estimates dominates its jackknife (a rare,"
            " extreme estimate); raise --samples, or read that coordinate's variance as"
            " uncertain"
        )
    if timing is not None and timing.below_resolution:
        notes.append("timing is near the timer's resolution; raise --samples for a longer batch")
    if timing is not None and (unstable := timing_warning(timing)):
        notes.append(unstable)
    return notes
