"""One training trajectory: θ moved by an optimizer along one estimator's gradients, with
checkpoints of J(θ), ‖∇J(θ)‖ and a basket of estimators measured at θ.

A trajectory is (objective, estimator, seed). θ starts at the objective's parameters; step t
draws ``batch`` per-sample estimates g_1..g_B of the estimator at θ_t on the trajectory's own
generator (seeded from (seed, objective, estimator)), adds the analytic term's exact gradient
∇h(θ_t) (autograd, on the device), and hands ĝ = (1/B) Σ g_b + ∇h to the optimizer
(``torch.optim.SGD`` or ``Adam``), which ascends where the objective is maximised
(:attr:`~gradbench.core.objective.Objective.maximize`: ELBOs, returns) and descends
otherwise. Biased estimators train too: that is how
their bias shows.

A step that leaves θ non-finite or outside its support ends the trajectory, with the step
in ``reason``.

**The basket's draws.** Each checkpoint's basket runs with the trajectory's seed, so the same
random numbers serve every checkpoint (common random numbers): the variance curves along a
trajectory share their sampling noise, which makes differences between checkpoints sharper.

**Constraints.** A parameter with a support other than ℝ
(:meth:`~gradbench.core.objective.Objective.constraints`: σ > 0, a concentration) is optimised
as u = T⁻¹(θ) with T = ``torch.distributions.transform_to(support)``, and the estimate is pulled
back by the chain rule, ∂J/∂u = ∂J/∂θ · ∂θ/∂u, so θ = T(u) stays valid whatever the step. The
recorded θ is always the objective's own.

**Checkpoints**, at step 0, every ``eval_every`` steps and at the end, record the step, the
seconds spent on gradient steps so far (each step ends with one read from the device, whether
θ is still finite and in its support, so the seconds are the device's; checkpoints are not
counted), J(θ) — exact where the objective has ``expected_cost`` (a closed form,
quadrature, enumeration, dynamic programming), else the mean of ``n_samples`` draws of
f + h with its standard error —, ‖∇J(θ)‖ from its reference (an estimated reference's smallest
size, 64·r estimates, where there is no closed form), θ itself, and the basket: each basket
estimator run through the engine at θ with ``n_samples`` estimates (:func:`~gradbench.engine.
run.run_pair`), compare's statistics. The trained estimator is measured in its trajectory's
state; any other stateful one after its own warm-up at θ.

A stateful estimator (:attr:`~gradbench.core.estimator.Estimator.stateful`) is reset at the
start and updated after every step.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor
from torch.distributions import transform_to

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective, Reference
from gradbench.core.params import ParamLayout, Params
from gradbench.core.seeding import derive_seed
from gradbench.engine.reference import (
    MAX_ROWS_PER_CALL,
    estimate_reference,
    reference_estimator,
)
from gradbench.engine.run import RunConfig, RunResult, default_rows, run_pair, warm_up

#: The optimizers ``--optimizer`` chooses from.
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
#: Draws of J(θ) per chunk where it is estimated.
_VALUE_CHUNK = 4096


@dataclass(frozen=True)
class TrainConfig:
    """How to train: steps, estimates per step, optimizer and learning rate, checkpoints, and
    the engine's settings for the basket and for J(θ) where it is estimated (``run``: its
    ``n_samples`` estimates per basket estimator and per estimated J)."""

    steps: int = 100
    batch: int = 16
    optimizer: str = "sgd"
    lr: float = 0.01
    eval_every: int = 10
    run: RunConfig = field(default_factory=lambda: RunConfig(n_samples=10_000))


@dataclass
class Checkpoint:
    """One checkpoint of a trajectory (see the module docstring); ``theta`` float64 on the CPU,
    ``objective_value_se`` NaN where J is exact."""

    step: int
    wall_time_s: float
    objective_value: float
    objective_value_se: float
    grad_norm: float
    theta: Params
    basket: list[RunResult]


@dataclass
class Trajectory:
    """A finished (or failed) trajectory: its checkpoints, and ``reason`` when it stopped
    early (a failing estimate, θ no longer finite)."""

    objective: Objective
    estimator: Estimator
    seed: int
    run_seed: int
    checkpoints: list[Checkpoint] = field(default_factory=list)
    reason: str = ""
    estimator_state: str = ""
    #: Why the estimator cannot run on the objective (then nothing ran); "" when it can.
    skipped: str = ""


def train_trajectory(
    objective: Objective,
    estimator: Estimator,
    basket: Sequence[Estimator],
    config: TrainConfig,
    seed: int,
) -> Trajectory:
    """Train θ with ``estimator`` from the objective's parameters; never raises for a failing
    estimator (the trajectory keeps its checkpoints so far and the reason)."""
    run = replace(config.run, seed=seed)
    run_seed = derive_seed(seed, objective.name, estimator.name, "train")
    trajectory = Trajectory(objective, estimator, seed, run_seed)
    if reason := estimator.skip_reason(objective):
        trajectory.skipped = reason
        return trajectory
    device, dtype = run.device, run.dtype
    start = {k: v.to(device=device, dtype=dtype) for k, v in objective.parameters().items()}
    layout = ParamLayout.of(start)
    supports = {k: transform_to(c) for k, c in objective.constraints().items()}

    def constrained(free: Params) -> Params:
        return {k: supports[k](v) if k in supports else v for k, v in free.items()}

    free = {
        k: (supports[k].inv(v) if k in supports else v).detach().clone().requires_grad_()
        for k, v in start.items()
    }
    optimizer = OPTIMIZERS[config.optimizer](
        list(free.values()), lr=config.lr, maximize=objective.maximize
    )
    generator = torch.Generator(device=device).manual_seed(run_seed)
    estimator.reset(objective, start)
    seconds = 0.0
    try:
        for step in range(config.steps + 1):
            with torch.no_grad():  # θ_t, apart from the leaves the optimizer changes in place
                theta = {k: v.detach().clone() for k, v in constrained(free).items()}
            if step % config.eval_every == 0 or step == config.steps:
                checkpoint = _checkpoint(objective, estimator, basket, theta, step, seconds, run)
                trajectory.checkpoints.append(checkpoint)
            if step == config.steps:
                break
            started = time.perf_counter()
            gradient = _step_gradient(objective, estimator, theta, config.batch, generator)
            optimizer.zero_grad()
            with torch.enable_grad():
                mapped = constrained(free)
                pulled = layout.unflatten(gradient)
                outputs, grads = [mapped[k] for k in free], [pulled[k] for k in free]
                term = objective.analytic_term(mapped)  # ∇h by autograd, on the device
                if term is not None:
                    outputs, grads = [*outputs, term], [*grads, torch.ones_like(term)]
                torch.autograd.backward(outputs, grads)
            optimizer.step()
            estimator.update(objective, theta)
            valid = _valid(constrained(free), objective.constraints())  # the step's one read
            seconds += time.perf_counter() - started
            if not valid:
                trajectory.reason = (
                    f"θ left its support or stopped being finite at step {step + 1}"
                    " (try a smaller --lr)"
                )
                break
    except Exception as error:  # one failing trajectory must not stop the others
        trajectory.reason = f"{type(error).__name__}: {error}"
    trajectory.estimator_state = estimator.state_description()
    return trajectory


def _step_gradient(
    objective: Objective,
    estimator: Estimator,
    theta: Params,
    batch: int,
    generator: torch.Generator,
) -> Tensor:
    """ĝ = (1/B) Σ_b g_b at θ, ``[P]`` in θ's dtype (∇h is added by autograd in the step)."""
    estimates = estimator.estimate(objective, theta, batch, generator)
    size = ParamLayout.of(theta).size
    if tuple(estimates.shape) != (batch, size):
        raise ValueError(
            f"{estimator.name} returned shape {tuple(estimates.shape)}, expected {(batch, size)}"
        )
    return estimates.mean(0)


def _valid(theta: Params, supports: dict) -> bool:
    """Whether θ is finite and inside every declared support: one host read per step (the
    step's result decides whether there is a next one)."""
    checks = [v.isfinite().all() for v in theta.values()]
    checks += [supports[k].check(theta[k]).all() for k in supports]
    return bool(torch.stack(checks).all())


def _checkpoint(
    objective: Objective,
    estimator: Estimator,
    basket: Sequence[Estimator],
    theta: Params,
    step: int,
    seconds: float,
    run: RunConfig,
) -> Checkpoint:
    exact = {k: v.detach().to(torch.float64, copy=True).cpu() for k, v in theta.items()}
    value, value_se = _objective_value(objective, exact, step, run)
    reference = _reference(objective, exact, run)
    measured = []
    for member in basket:
        if member is estimator:
            measured.append(run_pair(objective, member, run, at=exact))
            continue
        fresh = copy.deepcopy(member)
        if fresh.stateful:
            warm_up(objective, fresh, theta, run.seed)
        measured.append(run_pair(objective, fresh, run, at=exact))
    return Checkpoint(
        step, seconds, value, value_se, float(reference.gradient.norm()), exact, measured
    )


def _objective_value(
    objective: Objective, params: Params, step: int, run: RunConfig
) -> tuple[float, float]:
    """J(θ) and its standard error: exact (NaN error) where the objective has
    ``expected_cost``, else the mean of ``run.n_samples`` draws of f + h (float64, on the run's
    device, on a generator of its own)."""
    exact = type(objective).expected_cost is not Objective.expected_cost
    if exact and objective.gives_reference():
        return float(objective.expected_cost(params)), math.nan
    on_device = {k: v.to(run.device) for k, v in params.items()}
    seed = derive_seed(run.seed, objective.name, "objective value", str(step))
    generator = torch.Generator(device=run.device).manual_seed(seed)
    total = squares = 0.0
    shift = None  # the first chunk's mean: sums of centred costs keep their precision
    for start in range(0, run.n_samples, _VALUE_CHUNK):
        rows = min(_VALUE_CHUNK, run.n_samples - start)
        with torch.no_grad():
            cost = objective.cost(objective.sample(on_device, rows, generator), on_device)
        cost = cost.double()
        shift = float(cost.mean()) if shift is None else shift
        centred = cost - shift
        total, squares = total + float(centred.sum()), squares + float((centred**2).sum())
    n = run.n_samples
    mean = total / n
    variance = max(squares / n - mean**2, 0.0) * n / max(n - 1, 1)
    term = objective.analytic_term(params)
    return shift + mean + (0.0 if term is None else float(term)), math.sqrt(variance / n)


def _reference(objective: Objective, params: Params, run: RunConfig) -> Reference:
    """The reference gradient at θ: the objective's own, else the smallest estimated one."""
    if objective.gives_reference():
        return objective.reference_at(params)
    maker = reference_estimator(objective, run.reference.estimator)
    rows = default_rows(objective, params, maker, run, torch.float64, MAX_ROWS_PER_CALL)
    labels = ParamLayout.of(params).labels()
    estimated = estimate_reference(
        objective, maker, params, run.reference, run.device, rows, None, 1, labels, smallest=True
    )
    return estimated.reference
