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
    reference_estimator,
    run_variance_of,
)
from gradbench.engine.timing import (
    ChunkClock,
    Timing,
    synchronize,
    time_per_sample,
    timing_warning,
)
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
TIMING_SHARE = 0.05
MIN_TIMING_S = 0.015
#: The names of a run's dtypes and devices (``cuda:N`` too), and the range of its seeds (stored
#: in int64 columns: CSV, JSON, pandas' Int64).
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("cpu", "cuda", "auto")
SEED_RANGE = (-(2**63), 2**63 - 1)

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
    #: A stateful estimator's state when it was measured ("" for a stateless one).
    estimator_state: str = ""
    #: Wall seconds of the warm-up that put it in that state (:func:`warm_up`, device
    #: synchronised; 0 without one): a set-up cost that ``timing`` does not include.
    warm_up_s: float = 0.0


class MemoryBudgetError(ValueError):
    """Not even the smallest aligned chunk of estimates fits the memory budget."""


def choose_chunk_size(
    objective: Objective,
    params: Params,
    evals_per_sample: int,
    config: RunConfig,
    working_bytes: int = 0,
) -> int:
    """Rows per chunk: ``config.chunk_size`` if given, else what fits the memory budget beside
    the statistics' own state, rounded down to a multiple of :data:`ROW_ALIGNMENT`. An
    estimate costs its evaluations' temporaries, ``working_bytes`` of the estimator's own
    (:meth:`~gradbench.core.estimator.Estimator.working_bytes`) and its statistics' float64
    values.

    Raises :class:`MemoryBudgetError` up front when not even :data:`ROW_ALIGNMENT` rows fit:
    smaller chunks would draw other random numbers than the aligned ones, and a θ that large
    should be a deliberate choice (``--chunk-size``)."""
    if config.chunk_size is not None:
        return max(1, min(config.chunk_size, config.n_samples))
    elements = objective.elements_per_evaluation(params)
    grad_dim = ParamLayout.of(params).size
    itemsize = torch.empty((), dtype=config.dtype).element_size()
    per_estimate = _BYTES_PER_ELEMENT_FACTOR * itemsize * evals_per_sample * elements
    per_estimate += working_bytes
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


def warm_up(objective: Objective, estimator: Estimator, params: Params, seed: int) -> None:
    """Reset a stateful estimator and advance it by its :attr:`~Estimator.warm_up_steps`
    updates of :attr:`~Estimator.warm_up_batch` estimates at ``params``, on a generator of its
    own (from ``seed`` and the pair's names): the state ``compare`` measures it in."""
    estimator.reset(objective, params)
    device = next(iter(params.values())).device
    warm_up_seed = derive_seed(seed, objective.name, estimator.name, "warm-up")
    generator = torch.Generator(device=device).manual_seed(warm_up_seed)
    for _ in range(estimator.warm_up_steps):
        estimator.warm_up_step(objective, params, estimator.warm_up_batch, generator)


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


def run_pair(
    objective: Objective,
    estimator: Estimator,
    config: RunConfig,
    at: Params | None = None,
) -> RunResult:
    """Measure ``estimator`` on ``objective`` at θ = ``at`` (named float64 tensors; default:
    the objective's own parameters); never raises for a failing pair. A stateful estimator is
    measured as it comes when ``at`` is given (a trajectory's state), else after its reset and
    warm-up (:func:`warm_up`)."""
    theta = objective.parameters() if at is None else at
    params = {k: v.to(device=config.device, dtype=config.dtype) for k, v in theta.items()}
    layout = ParamLayout.of(params)
    result = RunResult(
        objective,
        estimator,
        status=Status.OK,
        grad_dim=layout.size,
        labels=layout.labels(),
        evals_per_sample=estimator.evaluations(objective, params),
        n_samples=config.n_samples,
        run_seed=derive_seed(config.seed, objective.name, estimator.name),
    )
    if reason := estimator.skip_reason(objective):
        result.status, result.reason = Status.SKIPPED, reason
        return result
    try:
        if estimator.stateful and at is None:
            started = time.perf_counter()
            warm_up(objective, estimator, params, config.seed)
            synchronize(config.device)
            result.warm_up_s = time.perf_counter() - started
        result.estimator_state = estimator.state_description()
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
    problem = cost_shape_problem(objective, params, config.device)
    if problem:
        raise ValueError(problem)
    # The reference is taken at the parameters as the run's dtype represents them.
    exact_params = {k: v.double().cpu() for k, v in params.items()}
    if objective.gives_reference():
        reference = objective.reference_at(exact_params)
        result.reference_method = objective.reference_method
    else:
        reference = _estimated_reference(objective, estimator, params, exact_params, config, result)
    analytic = objective.analytic_gradient(exact_params)
    offset = None if analytic is None else analytic.to(config.device, config.dtype)
    generator = torch.Generator(device=config.device).manual_seed(result.run_seed)
    working = estimator.working_bytes(objective, params)
    chunk = choose_chunk_size(objective, params, result.evals_per_sample, config, working)

    def estimates(m: int, source: torch.Generator = generator) -> Tensor:
        g = estimator.estimate(objective, params, m, source)
        _check_output(estimator.name, g, (m, result.grad_dim), config)
        return g if offset is None else g + offset

    def fresh_statistics() -> GradientStatistics:
        return GradientStatistics(
            reference.gradient.to(config.device),
            config.n_samples,
            reference.standard_error,
            reference.degrees_of_freedom,
        )

    statistics = fresh_statistics()
    clock = ChunkClock(config.device)
    initial = generator.get_state()
    started = time.perf_counter()
    while statistics.added < config.n_samples:
        m = min(chunk, config.n_samples - statistics.added)
        try:
            with clock.timing(m):
                chunk_estimates = estimates(m)
            statistics.add(chunk_estimates)
            # Free the chunk before the next is drawn: its memory is then reused while still
            # in cache, not held beside a second chunk (docs/performance.md).
            chunk_estimates = None
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError from torch 2.5 on
            if m == 1:
                raise
            # Start the pass again with half the chunk, from the generator's first state: the
            # run then is the one its recorded chunk size makes (out of memory comes early).
            chunk_estimates = None  # let the failed chunk's memory go before the retry
            chunk, statistics = _halved(m), fresh_statistics()
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
        *_warnings(
            result.summary, result.timing, result.labels, competes=estimator.unbiased_for(objective)
        ),
    ]


#: Estimates of the pilot that measures a run's noise for its estimated reference.
PILOT_ROWS = 1024


def _estimated_reference(
    objective: Objective,
    estimator: Estimator,
    params: Params,
    exact_params: Params,
    config: RunConfig,
    result: RunResult,
) -> Reference:
    """The estimated reference of an objective without one of its own, sized for this run
    (:mod:`gradbench.engine.reference`), recorded on ``result``.

    The run's noise comes from a pilot: up to :data:`PILOT_ROWS` estimates of the run's
    estimator on a generator of their own, so neither the reference nor the run depends on
    the chunk size. Rows per call, of the pilot and of the reference, are what the device's
    default budget holds (not ``--chunk-size``), for the same reason. The estimator that makes
    the reference gets the smallest one: its bias test is not informative anyway, and its MSE
    and cosine barely feel a reference of 64·r estimates."""
    maker = reference_estimator(objective, config.reference.estimator)
    made_by_run = type(maker) is type(estimator) and maker.config == estimator.config
    run_variance = None
    if not made_by_run:
        pilot_rows = default_rows(objective, params, estimator, config, config.dtype, PILOT_ROWS)
        seed = derive_seed(config.seed, objective.name, estimator.name, "reference pilot")
        pilot = torch.Generator(device=config.device).manual_seed(seed)
        run_variance = run_variance_of(estimator.estimate(objective, params, pilot_rows, pilot))
    rows = default_rows(objective, exact_params, maker, config, torch.float64, MAX_ROWS_PER_CALL)
    estimated = estimate_reference(
        objective,
        maker,
        exact_params,
        config.reference,
        config.device,
        rows,
        run_variance,
        config.n_samples,
        result.labels,
        smallest=made_by_run,
    )
    result.reference_method = estimated.description
    result.reference_estimator = maker.name
    result.reference_samples = estimated.samples
    result.bias_informative = not made_by_run
    if estimated.warning:
        result.warnings.append(estimated.warning)
    return estimated.reference


def default_rows(
    objective: Objective,
    params: Params,
    estimator: Estimator,
    config: RunConfig,
    dtype: torch.dtype,
    most: int,
) -> int:
    """Rows of one call of ``estimator`` under the device's default budget, at most ``most``."""
    default = replace(config, dtype=dtype, n_samples=most, chunk_size=None, memory_budget=None)
    evaluations = estimator.evaluations(objective, params)
    working = estimator.working_bytes(objective, params)
    return choose_chunk_size(objective, params, evaluations, default, working)


def cost_shape_problem(objective: Objective, params: Params, device: torch.device) -> str:
    """Why the cost does not return ``[*S]`` for draws ``[*S, *event]`` (two draws, then with
    an extra leading dim, then for θ batched over the draws), or "" when it does. The engine
    refuses such a cost before any estimate: an estimator would otherwise broadcast it
    silently into a wrong estimate. Draws on a generator of its own."""
    generator = torch.Generator(device=device).manual_seed(0)
    x = objective.sample(params, 2, generator)
    batched = {k: v.expand(2, *v.shape) for k, v in params.items()}
    cases = ((x, params, (2,)), (x.unsqueeze(0), params, (1, 2)), (x, batched, (2,)))
    for draws, theta, expected in cases:
        with torch.no_grad():
            shape = tuple(objective.cost(draws, theta).shape)
        if shape != expected:
            batch = " and θ batched over them" if theta is batched else ""
            return (
                f"{objective.name}.cost returned shape {shape} for draws of shape"
                f" {tuple(draws.shape)}{batch}, expected {expected}: one cost per draw, the"
                " draw's event dims reduced"
            )
    return ""


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
