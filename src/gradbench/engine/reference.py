"""The estimated reference gradient of an objective without a closed form.

An objective that defines neither ``expected_cost`` nor ``reference_gradient``
(:meth:`~gradbench.core.objective.Objective.has_own_reference`) is measured against the mean of
a large run of an unbiased estimator:

* **which estimator**: the one the user names (it must be unbiased by design and apply), else
  ``rqmc-reparam`` where the objective offers ``rsample``, a differentiable cost and noise by
  inversion (pathwise gradients on scrambled Sobol nets: on ``vae-gaussian`` its 16 points
  give 120× less variance than one pathwise estimate, 7.5× less per evaluation, so a reference
  as precise costs a fraction), else ``reparam`` where it offers ``rsample`` and a
  differentiable cost, else ``rloo`` (K = 2), else ``reinforce`` (:func:`reference_estimator`);
* **its own seed streams**: :data:`GROUPS` independent groups, group g drawn on a generator
  seeded by (objective, estimator, g) alone, in calls of r estimates (what fits the device's
  default chunk budget, at most :data:`MAX_ROWS_PER_CALL`; not ``--chunk-size``). The
  reference is independent of every run's draws (their seeds derive from the run's seed and
  the pair's names) and the same for every run seed;
* **its error**: after c calls per group, with group means m̄_g of c·r estimates each, the
  reference is ĝ = (1/G) Σ_g m̄_g ``[P]`` and its standard error se_d = s_d(m̄)/√G with G − 1
  degrees of freedom, which the bias test adds to the run's (:mod:`gradbench.stats.summary`);
  per estimate its variance is v_d = c·r·s_d²(m̄);
* **its size adapts** to the run it serves: the run's per-coordinate standard error is
  √(w_d/n), w_d the variance of the run's estimates (from a pilot of the run's estimator on a
  generator of its own, :mod:`gradbench.engine.run`), so the reference needs
  m ≥ n·max_d(v_d/w_d)/ρ² estimates for se_d ≤ ρ·√(w_d/n) on every coordinate, with
  ρ = :data:`PRECISION` by default: the bias test's standard error then grows by at most
  √(1 + ρ²) − 1 = 3% (when v and w are estimated well; ``reference_se_ratio`` records what was
  achieved). v_d comes from one call per group; m = G·r·c is rounded up to c = 2^j, and capped
  at :attr:`ReferencePlan.max_samples` with a warning that names the worst coordinate;
  coordinates where the run's estimates are constant are left out. ``--reference-samples``
  fixes m instead (rounded up the same way, at least G·r). The estimator that makes the
  reference gets c = 1: its own bias test is not informative;
* **where**: on the run's device, in float64, the analytic part ∇h of J added
  (:meth:`~gradbench.core.objective.Objective.analytic_gradient`);
* **cached**: per process, and on disk under :attr:`ReferencePlan.cache_dir`
  (:mod:`gradbench.engine.reference_cache`). A stream keeps its groups' running sums and
  generator states, and the sums of group means at each c = 2^j, so a longer reference extends a
  shorter one and a run's reference is the same whatever ran before it.

An estimator measured against its own reference cannot show its own bias: its bias test is
reported as not informative (:meth:`EstimatedReference.made_by`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from gradbench.core.errors import InputError
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective, Reference
from gradbench.core.params import Params
from gradbench.core.seeding import derive_seed
from gradbench.engine import reference_cache
from gradbench.estimators.quasi_monte_carlo import RandomizedQuasiMonteCarlo
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import LeaveOneOut

#: Independent groups of a reference: its standard error has GROUPS − 1 degrees of freedom.
GROUPS = 64
#: Estimates per call at most (fewer where a chunk holds fewer).
MAX_ROWS_PER_CALL = 1024
#: Default aim: reference standard error ≤ PRECISION × the run's, per coordinate.
PRECISION = 0.25
#: Default cap on the estimates of one reference (2²¹ ≈ 2.1 million).
MAX_SAMPLES = 2**21
#: The default reference estimators, in order of preference.
PREFERENCE = (RandomizedQuasiMonteCarlo, Reparam, LeaveOneOut, Reinforce)


@dataclass(frozen=True)
class ReferencePlan:
    """How an estimated reference is made: the estimator (None: :func:`reference_estimator`
    chooses), a fixed number of estimates (None: sized to each run, see the module docstring),
    the precision ρ and the cap of that sizing, and the disk cache (None: none)."""

    estimator: Estimator | None = None
    samples: int | None = None
    precision: float = PRECISION
    max_samples: int = MAX_SAMPLES
    cache_dir: Path | None = None


@dataclass(frozen=True)
class EstimatedReference:
    """A reference, the estimator that made it and how many estimates it averages; ``warning``
    is non-empty when the cap kept it from its aim."""

    reference: Reference
    estimator: Estimator
    samples: int
    warning: str = ""

    @property
    def description(self) -> str:
        """The ``reference`` column: how it was made."""
        return f"estimated ({self.estimator.name}, {self.samples} estimates)"

    def made_by(self, estimator: Estimator) -> bool:
        """Whether ``estimator`` is the one that made this reference (same class and options):
        its bias test against it is not informative."""
        return type(estimator) is type(self.estimator) and estimator.config == self.estimator.config


class ReferenceUnavailable(InputError):
    """An objective has no reference of its own and no estimator can estimate one."""


def reference_estimator(objective: Objective, chosen: Estimator | None = None) -> Estimator:
    """The estimator of ``objective``'s estimated reference: ``chosen`` if given (it must be
    unbiased and apply), else the first of :data:`PREFERENCE` that applies."""
    if chosen is not None:
        if not chosen.unbiased:
            raise InputError(
                f"reference estimator {chosen.name} is not unbiased by design; choose an"
                " unbiased one (reparam, rloo, reinforce, ...)"
            )
        if reason := chosen.skip_reason(objective):
            raise InputError(
                f"reference estimator {chosen.name} cannot estimate the reference of"
                f" {objective.name}: it {reason}"
            )
        return chosen
    for candidate in default_estimators(objective):
        return candidate
    raise ReferenceUnavailable(
        f"{objective.name} has no reference gradient: it defines no expected_cost (closed"
        " form) and no reference_gradient, and no unbiased estimator applies to it"
        " (reinforce needs its distribution's log_prob); implement expected_cost or"
        " reference_gradient, or give the distribution a log_prob"
    )


def default_estimators(objective: Objective) -> Iterator[Estimator]:
    """The estimators of :data:`PREFERENCE` that can estimate ``objective``'s reference, in
    order: they apply, and the score-function ones find a working ``log_prob``."""
    for cls in PREFERENCE:
        candidate = cls()
        if not candidate.skip_reason(objective) and (cls is Reparam or _has_log_prob(objective)):
            yield candidate


def _has_log_prob(objective: Objective) -> bool:
    """Whether q_θ's ``log_prob`` works on a draw, as the score-function estimators need."""
    params = objective.parameters()
    try:
        x = objective.sample(params, 1, torch.Generator().manual_seed(0))
        objective.distribution(params).log_prob(x)
    except NotImplementedError:
        return False
    return True


@dataclass
class _Stream:
    """One reference stream: per group its running sum ``[G, P]`` and generator state after
    ``calls`` calls, and at each c = 2^j calls the sums of (group mean − shift) and of their
    squares, shift being the first checkpoint's mean."""

    sums: Tensor | None = None
    states: list[Tensor] = field(default_factory=list)
    calls: int = 0
    shift: Tensor | None = None
    checkpoints: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)


#: Reference streams of this process, by objective class and cache key (two classes of one
#: name and file, as tests make, must not share a stream).
_streams: dict[tuple[type, str], _Stream] = {}


def estimate_reference(
    objective: Objective,
    estimator: Estimator,
    params: Params,
    plan: ReferencePlan,
    device: torch.device,
    rows_per_call: int,
    run_variance: Tensor | None,
    run_samples: int,
    labels: list[str],
    smallest: bool = False,
) -> EstimatedReference:
    """The reference that ``estimator`` (:func:`reference_estimator`) estimates at ``params``
    (float64, CPU) for a run of ``run_samples`` estimates whose per-coordinate variance is about
    ``run_variance`` ``[P]`` (None: assume the estimator's own); ``rows_per_call`` estimates fit
    one call on ``device``. ``smallest``: one call per group, whatever the run (for the
    estimator that makes the reference, whose bias test it cannot inform)."""
    dtype = torch.float64
    on_device = {k: v.to(device=device, dtype=dtype) for k, v in params.items()}
    rows = max(1, min(rows_per_call, MAX_ROWS_PER_CALL))
    key, on_disk = reference_cache.key(objective, params, estimator, device, dtype, rows, GROUPS)
    cache_dir = plan.cache_dir if on_disk else None
    stream = _streams.get((type(objective), key)) or _load(cache_dir, key)
    _streams[type(objective), key] = stream

    def grow(calls: int) -> None:
        if calls > stream.calls:
            _extend(stream, calls, objective, estimator, on_device, rows)
            if cache_dir is not None:
                reference_cache.store(cache_dir, key, _state(stream))

    grow(1)
    per_round = GROUPS * rows  # estimates per call of every group
    warning = ""
    if plan.samples is not None:
        calls = _calls_per_group(plan.samples / per_round)
    elif smallest:
        calls = 1
    else:
        per_estimate = _variance(stream, 1) * per_round / GROUPS
        own = per_estimate if run_variance is None else run_variance.double().cpu()
        needed = run_samples * _largest_ratio(per_estimate, own) / plan.precision**2
        calls = _calls_per_group(needed / per_round, plan.max_samples / per_round)
        if needed > calls * per_round:
            warning = _cap_warning(per_estimate, own, run_samples, calls * per_round, plan, labels)
    grow(calls)
    mean = stream.shift + stream.checkpoints[calls][0] / GROUPS
    standard_error = (_variance(stream, calls) / GROUPS).sqrt()
    analytic = objective.analytic_gradient(params)
    gradient = mean if analytic is None else mean + analytic
    reference = Reference(gradient, standard_error, GROUPS - 1)
    return EstimatedReference(reference, estimator, calls * per_round, warning)


def _calls_per_group(wanted: float, cap: float = math.inf) -> int:
    """The fewest calls per group c = 2^j (j ≥ 0) reaching ``wanted``, but no more than ``cap``
    (and never under one)."""
    calls = 1
    while calls < wanted and 2 * calls <= cap:
        calls *= 2
    return calls


def _largest_ratio(reference: Tensor, run: Tensor) -> float:
    """max_d v_d/w_d over the coordinates where both vary. Where the run's estimates are
    constant (w_d = 0) no reference could be small against them; those are left out."""
    both = (reference > 0) & (run > 0)
    if not bool(both.any()):
        return 0.0
    return float((reference[both] / run[both]).max())


def _cap_warning(
    reference: Tensor,
    run: Tensor,
    run_samples: int,
    samples: int,
    plan: ReferencePlan,
    labels: list[str],
) -> str:
    """The coordinate whose reference error stays furthest above its aim at the cap."""
    ratio = (reference * run_samples / (samples * run)).sqrt()
    ratio = torch.where(run > 0, ratio, torch.zeros_like(ratio)).nan_to_num(0.0)
    worst = int(ratio.argmax())
    return (
        f"the estimated reference is capped at {samples} estimates: its standard error on"
        f" {labels[worst]} is about {float(ratio[worst]):.3g}× the run's (aim"
        f" {plan.precision:g}×); pass --reference-samples N to raise it"
    )


def _variance(stream: _Stream, calls: int) -> Tensor:
    """s²(m̄) over the groups' means after ``calls`` calls, ``[P]`` float64 on the CPU."""
    sums, squares = stream.checkpoints[calls]
    return ((squares - sums**2 / GROUPS) / (GROUPS - 1)).clamp_min(0.0)


def _extend(
    stream: _Stream,
    calls: int,
    objective: Objective,
    estimator: Estimator,
    params: Params,
    rows: int,
) -> None:
    """Draw calls until every group has ``calls`` (a power of two), recording checkpoints.
    The stream changes only when every call succeeded: an error (out of memory, NaN, Ctrl-C)
    leaves it as it was."""
    device = next(iter(params.values())).device
    generators = []
    for group in range(GROUPS):
        generator = torch.Generator(device=device)
        if stream.states:
            generator.set_state(stream.states[group])
        else:
            seed = derive_seed(0, objective.name, "reference", estimator.name, str(group))
            generator.manual_seed(seed)
        generators.append(generator)
    nonfinite = torch.zeros((), dtype=torch.int64, device=device)
    sums = list(stream.sums.to(device)) if stream.sums is not None else [0.0] * GROUPS
    done, shift, checkpoints = stream.calls, stream.shift, dict(stream.checkpoints)
    while done < calls:
        for group, generator in enumerate(generators):
            estimates = estimator.estimate(objective, params, rows, generator)
            nonfinite += (~estimates.isfinite()).sum()
            sums[group] = sums[group] + estimates.double().sum(0)
        done += 1
        if done & (done - 1) == 0:  # a power of two: a checkpoint
            means = (torch.stack(sums) / (done * rows)).cpu()  # [G, P]
            shift = means.mean(0) if shift is None else shift
            deviations = means - shift
            checkpoints[done] = (deviations.sum(0), (deviations**2).sum(0))
    if int(nonfinite):
        raise ValueError(
            f"the estimated reference's {estimator.name} estimates of {objective.name} had"
            f" {int(nonfinite)} NaN/Inf values; check the objective at its parameters"
        )
    stream.sums = torch.stack(sums).cpu()
    stream.states = [generator.get_state() for generator in generators]
    stream.calls, stream.shift, stream.checkpoints = done, shift, checkpoints


def _state(stream: _Stream) -> dict:
    """What the disk cache keeps of a stream."""
    return {
        "calls": stream.calls,
        "sums": stream.sums,
        "states": stream.states,
        "shift": stream.shift,
        "checkpoints": {str(k): list(v) for k, v in stream.checkpoints.items()},
    }


def _load(cache_dir: Path | None, key: str) -> _Stream:
    """The stream the disk cache holds for ``key``, or an empty one (also for an entry that is
    not a state this module wrote)."""
    state = None if cache_dir is None else reference_cache.load(cache_dir, key)
    try:
        return _Stream(
            sums=state["sums"],
            states=list(state["states"]),
            calls=int(state["calls"]),
            shift=state["shift"],
            checkpoints={int(k): (v[0], v[1]) for k, v in state["checkpoints"].items()},
        )
    except (TypeError, KeyError, IndexError, ValueError):
        return _Stream()


def run_variance_of(estimates: Tensor) -> Tensor | None:
    """The per-coordinate variance of a chunk of a run's estimates ``[m, P]``, float64 on the
    CPU (None below two finite rows): the run's noise that the reference is sized against."""
    finite = estimates[estimates.isfinite().all(1)]
    if finite.shape[0] < 2:
        return None
    return finite.double().var(0).cpu()
