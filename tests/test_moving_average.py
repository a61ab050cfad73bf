"""The moving-average (EMA) baseline estimator: its estimate, its recursion, conformance, and
where its baseline settles after the compare warm-up."""

from __future__ import annotations

import math

import pytest
import torch

from gradbench.core.errors import InputError
from gradbench.core.estimator import per_sample_gradients
from gradbench.estimators.moving_average import MovingAverageBaseline
from gradbench.estimators.reinforce import Reinforce
from gradbench.extend.conformance import check_estimator
from gradbench.objectives.gaussian import GaussianSquare


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_estimate_is_reinforce_minus_baseline_times_score():
    objective = GaussianSquare(dim=2)
    params = objective.parameters()
    estimator = MovingAverageBaseline()
    n = 64

    # Before any update b = 0: plain reinforce, even without reset.
    torch.testing.assert_close(
        estimator.estimate(objective, params, n, _generator(1)),
        Reinforce().estimate(objective, params, n, _generator(1)),
    )

    # One update fixes b to that batch's mean cost.
    estimator.reset(objective, params)
    x_first = objective.sample(params, n, _generator(2))
    estimator.estimate(objective, params, n, _generator(2))
    estimator.update(objective, params)
    b = objective.cost(x_first, params).mean()
    torch.testing.assert_close(estimator.baseline, b)

    got = estimator.estimate(objective, params, n, _generator(3))
    x = objective.sample(params, n, _generator(3))
    score = per_sample_gradients(lambda t: objective.distribution(t).log_prob(x), params, n)
    expected = Reinforce().estimate(objective, params, n, _generator(3)) - b * score
    torch.testing.assert_close(got, expected)
    assert got.dtype == torch.float64
    # estimate leaves b alone: the same draws give the same estimates.
    torch.testing.assert_close(estimator.estimate(objective, params, n, _generator(3)), got)


def test_update_follows_the_recursion():
    objective = GaussianSquare()
    params = objective.parameters()
    estimator = MovingAverageBaseline(decay=0.75)
    assert estimator.state_description() == "baseline b = 0 (no updates)"

    estimator.update(objective, params)  # no estimate yet: nothing to fold in
    assert estimator.updates == 0 and estimator.baseline == 0.0

    b = None
    for k, pending in enumerate([2.0, 4.0, -1.0, 10.0]):
        estimator._pending = torch.tensor(pending, dtype=torch.float64)
        estimator.update(objective, params)
        b = pending if k == 0 else 0.75 * b + 0.25 * pending  # bias-corrected start
        torch.testing.assert_close(estimator.baseline, torch.tensor(b, dtype=torch.float64))
        assert estimator.updates == k + 1
        assert estimator._pending is None
        estimator.update(objective, params)  # a second update without an estimate: no-op
        assert estimator.updates == k + 1
    assert estimator.state_description() == f"baseline b = {b:.4g} after 4 updates"

    # estimate records its batch mean as the pending value.
    x = objective.sample(params, 32, _generator(5))
    estimator.estimate(objective, params, 32, _generator(5))
    torch.testing.assert_close(estimator._pending, objective.cost(x, params).mean())

    estimator.reset(objective, params)
    assert estimator.baseline == 0.0 and estimator.updates == 0 and estimator._pending is None


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_decay_outside_unit_interval_is_rejected(decay):
    with pytest.raises(InputError, match=f"decay={decay!r}"):
        MovingAverageBaseline(decay=decay)


def test_conformance():
    """The suite calls estimate without reset (b = 0) or after its warm-up; either way
    unbiased. Seeded; each unbiasedness test fails a correct estimator w.p. ≤ 1e-4."""
    assert check_estimator(MovingAverageBaseline(), n_samples=20000).passed


def test_baseline_after_warm_up_is_near_the_expected_cost():
    """After 100 updates of 16 estimates at gaussian-square's default θ (J = 5, Var f = 18),
    b = β⁹⁹ m_1 + Σ_{k=2}^{100} (1 − β) β^{100−k} m_k over i.i.d. batch means m_k: weights that
    sum to 1, so E[b] = J exactly, and Var(b) = Var(f)/16 · (β¹⁹⁸ + (1 − β)/(1 + β)(1 − β¹⁹⁸))
    ≈ (1 − β)/(1 + β) · Var(f)/16 (se ≈ 0.24 at β = 0.9). Var(f) is estimated from 10⁶ draws.
    A 4-standard-error bound on b − J fails a correct estimator with probability ≈ 6e-5 under
    the normal approximation (b averages ≈ 300 effective draws); the test is seeded."""
    objective = GaussianSquare()
    params = objective.parameters()
    estimator = MovingAverageBaseline()
    beta, batch, steps = 0.9, estimator.warm_up_batch, estimator.warm_up_steps
    assert (batch, steps) == (16, 100)

    generator = _generator(11)
    estimator.reset(objective, params)
    for _ in range(steps):
        estimator.estimate(objective, params, batch, generator)
        estimator.update(objective, params)
    assert estimator.updates == steps

    var_f = float(objective.cost(objective.sample(params, 1_000_000, _generator(12)), params).var())
    weight_sq = beta ** (2 * (steps - 1)) + (1 - beta) / (1 + beta) * (
        1 - beta ** (2 * (steps - 1))
    )
    se = math.sqrt(var_f / batch * weight_sq)
    exact = float(objective.expected_cost(params))
    assert abs(float(estimator.baseline) - exact) < 4 * se, (float(estimator.baseline), exact, se)
    assert estimator.state_description().startswith("baseline b = ")
