"""The delta-method control variate estimators (score function and pathwise): no variance on
a quadratic cost, unbiased with β = 1 and after an update, their measured variance against the
quadrature of :mod:`gradbench.analysis.delta_method_variance` in the survey's cos(5x) setting,
through the engine, and their state β.

Tolerances: z-tests at Z = 4.5 (two-sided p = 6.8e-6 per coordinate; with Bonferroni over the
≤ 6 coordinates of a check, a false failure below 4.1e-5 per check, below 1e-3 over the file's
checks). Every test is seeded.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from gradbench import run_comparison
from gradbench.analysis.delta_method_variance import (
    pathwise_delta_variance,
    score_function_delta_variance,
)
from gradbench.analysis.exact_variance import (
    SeparableGaussian,
    pathwise_variance,
    score_function_variance,
)
from gradbench.core.params import Params
from gradbench.estimators.delta_method import (
    DeltaMethod,
    PathwiseDeltaMethod,
    TaylorExpansion,
)
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.extend.conformance import GaussianLinear
from gradbench.objectives.gaussian import DiagonalGaussian, GaussianCos, GaussianExp, GaussianSquare

Z = 4.5
ESTIMATORS = [DeltaMethod, PathwiseDeltaMethod]
#: θ with distinct coordinates, so a mixed-up coordinate shows.
DISTINCT = {
    "mu": torch.tensor([0.3, -0.8], dtype=torch.float64),
    "sigma": torch.tensor([0.7, 1.3], dtype=torch.float64),
}


class CosOfSum(DiagonalGaussian):
    """f(x) = cos(wᵀx), E = cos(wᵀμ) exp(−½ Σ w_d² σ_d²): a cost that is not separable, so the
    Hessian has off-diagonal entries."""

    name = "test-cos-of-sum"
    description = "f(x) = cos(wᵀx), x ~ N(μ, σ²)"
    weights = (1.0, -0.5, 0.8)

    def parameters(self) -> Params:
        return {
            "mu": torch.tensor([0.3, -0.8, 0.5], dtype=torch.float64),
            "sigma": torch.tensor([0.7, 1.3, 0.4], dtype=torch.float64),
        }

    def _w(self, like: Tensor) -> Tensor:
        return torch.tensor(self.weights, dtype=like.dtype, device=like.device)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return torch.cos(x @ self._w(x))

    def expected_cost(self, params: Params) -> Tensor:
        w, mu, sigma = self._w(params["mu"]), params["mu"], params["sigma"]
        return torch.cos(mu @ w) * torch.exp(-0.5 * (w**2 * sigma**2).sum(-1))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _updated(estimator_class, objective, params: Params, seed: int):
    """An estimator after reset and one update from warm_up_batch estimates, as compare warms up."""
    estimator = estimator_class()
    estimator.reset(objective, params)
    estimator.estimate(objective, params, estimator.warm_up_batch, _generator(seed))
    estimator.update(objective, params)
    return estimator


def _terms(estimator, objective, params: Params, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """The plain estimate g⁰ and the bracket c of the draws ``estimate`` makes from ``seed``."""
    x = objective.sample(params, n, _generator(seed))
    taylor = TaylorExpansion.at_mean(objective, params)
    noise = (x - params["mu"]) / params["sigma"]
    plain, control = estimator.terms(objective, params, taylor, x, noise)
    return plain, control - taylor.expectation_gradient(params)


@pytest.mark.parametrize("estimator_class", ESTIMATORS, ids=lambda c: c.name)
def test_quadratic_cost_leaves_no_variance(estimator_class):
    """f = h on gaussian-square, so every estimate is the exact gradient up to rounding
    (f − h is rounding, ~1e-14 at the draws' scale), before and after an update, which sets
    β = 1 to rounding. Deterministic bounds far above rounding: no false failures."""
    objective = GaussianSquare(dim=3, mu=1.0, sigma=1.0, k=3.0)
    params = objective.parameters()
    exact = objective.exact_gradient(params)
    estimator = estimator_class()
    estimator.reset(objective, params)
    for seed in (1, 2):
        estimates = estimator.estimate(objective, params, 4096, _generator(seed))
        torch.testing.assert_close(estimates, exact.expand_as(estimates), rtol=0, atol=1e-10)
        assert float(estimator.exact_variance(objective, params).max()) < 1e-20
        estimator.update(objective, params)
        torch.testing.assert_close(
            estimator.coefficients, torch.ones_like(exact), rtol=0, atol=1e-9
        )


@pytest.mark.parametrize("updated", [False, True], ids=["beta-1", "updated"])
@pytest.mark.parametrize("estimator_class", ESTIMATORS, ids=lambda c: c.name)
@pytest.mark.parametrize(
    ("objective", "params"),
    [
        (GaussianCos(dim=2, k=1.5), DISTINCT),
        (GaussianExp(dim=2, k=0.7), DISTINCT),
        (CosOfSum(), CosOfSum().parameters()),
    ],
    ids=["gaussian-cos", "gaussian-exp", "cos-of-sum"],
)
def test_unbiased(objective, params, estimator_class, updated):
    """The mean of 100,000 estimates against the exact gradient, z-test at Z = 4.5 per
    coordinate (≤ 6 coordinates: false failure below 4.1e-5)."""
    if updated:
        estimator = _updated(estimator_class, objective, params, seed=5)
        assert estimator.coefficients is not None
    else:
        estimator = estimator_class()
    estimates = estimator.estimate(objective, params, 100_000, _generator(6))
    standard_error = estimates.std(0) / math.sqrt(estimates.shape[0])
    z = (estimates.mean(0) - objective.exact_gradient(params)) / standard_error
    assert float(z.abs().max()) < Z, z


def test_zero_coefficients_give_the_plain_estimators_variance():
    """At β = 0 the quadrature is the plain score function's and pathwise's exact variance
    (:mod:`gradbench.analysis.exact_variance`), term for term. Deterministic."""
    for objective, params in [(GaussianCos(k=5.0), None), (GaussianExp(dim=2, k=0.7), DISTINCT)]:
        gaussian = SeparableGaussian.of(objective, params or objective.parameters())
        zeros = torch.zeros(2 * gaussian.mu.numel(), dtype=torch.float64)
        torch.testing.assert_close(
            score_function_delta_variance(gaussian, zeros), score_function_variance(gaussian)
        )
        torch.testing.assert_close(
            pathwise_delta_variance(gaussian, zeros), pathwise_variance(gaussian)
        )


@pytest.mark.parametrize("updated", [False, True], ids=["beta-1", "updated"])
@pytest.mark.parametrize("estimator_class", ESTIMATORS, ids=lambda c: c.name)
def test_variance_matches_quadrature_in_the_survey_setting(estimator_class, updated, capsys):
    """cos(5x), x ~ N(1, 1), one coordinate (Mohamed et al. 2020, Figures 2 and 3): the sample
    variance of 400,000 estimates against exact_variance at the estimator's β, within Z = 4.5
    standard errors sqrt((m₄ − v²)/n) from the sample fourth central moment m₄ (2 coordinates:
    false failure below 1.4e-5 under the normal approximation). With β = 1 the score function's
    ∂/∂σ is about 3.5 ε⁴ (kurtosis ≈ 230), where 400,000 draws keep that approximation sound.
    Prints the variances beside reinforce's and reparam's exact ones."""
    objective = GaussianCos(k=5.0)
    params = objective.parameters()
    estimator = (
        _updated(estimator_class, objective, params, seed=7) if updated else estimator_class()
    )
    estimates = estimator.estimate(objective, params, 400_000, _generator(8))
    centred = estimates - estimates.mean(0)
    measured = centred.square().mean(0)
    standard_error = ((centred**4).mean(0) - measured**2).div(estimates.shape[0]).sqrt()
    exact = estimator.exact_variance(objective, params)
    with capsys.disabled():
        print(
            f"\n{estimator.name} [{estimator.state_description()}]: variance (μ, σ) measured"
            f" {measured.tolist()}, exact {exact.tolist()}; reinforce"
            f" {Reinforce().exact_variance(objective, params).tolist()}, reparam"
            f" {Reparam().exact_variance(objective, params).tolist()}"
        )
    z = (measured - exact) / standard_error
    assert float(z.abs().max()) < Z, (measured, exact, standard_error)


def test_through_the_engine():
    """``run_comparison`` warms the estimators up (one update of 4096 estimates) and measures
    them: finite variances and no significant bias (the engine's Bonferroni p ≥ 1e-4: under
    no bias a false failure w.p. about 1e-4 per pair)."""
    names = ["delta-method", "delta-pathwise", "reinforce", "reparam"]
    comparison = run_comparison(
        [GaussianCos(k=5.0)], names, n_samples=20_000, dtype="float64", timing_repeats=0
    )
    table = comparison.table().set_index("estimator")
    assert (table.status == "ok").all(), table.reason
    assert table.variance.map(math.isfinite).all() and (table.variance > 0).all()
    assert (table.bias_p >= 1e-4).all(), table.bias_p
    for name in names[:2]:
        assert table.estimator_state[name].endswith("after 1 update")


@pytest.mark.parametrize("estimator_class", ESTIMATORS, ids=lambda c: c.name)
def test_state_is_fixed_within_an_estimate(estimator_class):
    """Each row is g⁰ − β ⊙ c with β from before the call: the first 16 rows of a 64-row call
    are the rows of a 16-row call on the same seed (no row depends on the others), estimate
    leaves β alone, and the same draws give the same estimates. Deterministic."""
    objective, params = GaussianCos(dim=2, k=1.5), DISTINCT
    estimator = _updated(estimator_class, objective, params, seed=9)
    beta = estimator.coefficients.clone()
    long = estimator.estimate(objective, params, 64, _generator(10))
    short = estimator.estimate(objective, params, 16, _generator(10))
    torch.testing.assert_close(long[:16], short, rtol=0, atol=0)
    torch.testing.assert_close(estimator.coefficients, beta, rtol=0, atol=0)
    plain, control = _terms(estimator, objective, params, 64, seed=10)
    torch.testing.assert_close(long, plain - beta * control)


@pytest.mark.parametrize("estimator_class", ESTIMATORS, ids=lambda c: c.name)
def test_update_regresses_on_the_last_call_and_reset_restores_one(estimator_class):
    """update sets β_d = Cov(g⁰_d, c_d) / Var(c_d) of the last call's rows only, is a no-op
    without a new estimate, keeps β_d where Var(c_d) = 0, and reset brings back β = 1 (the
    estimates of a fresh estimator). Deterministic."""
    objective, params = GaussianCos(dim=2, k=1.5), DISTINCT
    estimator = estimator_class()
    assert estimator.state_description() == "β = 1 (no updates)"
    estimator.estimate(objective, params, 256, _generator(11))
    estimator.estimate(objective, params, 512, _generator(12))
    estimator.update(objective, params)
    plain, control = _terms(estimator, objective, params, 512, seed=12)
    plain, control = plain - plain.mean(0), control - control.mean(0)
    expected = (plain * control).sum(0) / control.square().sum(0)
    torch.testing.assert_close(estimator.coefficients, expected)
    assert estimator.updates == 1
    assert estimator.state_description().endswith(") after 1 update")
    estimator.update(objective, params)  # no estimate since: nothing changes
    torch.testing.assert_close(estimator.coefficients, expected, rtol=0, atol=0)
    assert estimator.updates == 1

    estimator.reset(objective, params)
    assert estimator.coefficients is None and estimator.updates == 0
    torch.testing.assert_close(
        estimator.estimate(objective, params, 64, _generator(13)),
        estimator_class().estimate(objective, params, 64, _generator(13)),
        rtol=0,
        atol=0,
    )


def test_coefficient_without_control_variance_is_kept():
    """On a linear cost H = 0, so the pathwise bracket of every ∂/∂μ is exactly 0: those β stay
    at 1 while the ∂/∂σ ones (bracket ε ∇f) are regressed. Deterministic."""
    objective = GaussianLinear()
    params = objective.parameters()
    estimator = _updated(PathwiseDeltaMethod, objective, params, seed=14)
    mu_part, sigma_part = estimator.coefficients.split(int(objective.setting("dim")))
    torch.testing.assert_close(mu_part, torch.ones_like(mu_part), rtol=0, atol=0)
    torch.testing.assert_close(sigma_part, torch.ones_like(sigma_part))  # f = h: β = 1


def test_declarations_and_descriptions():
    objective = GaussianCos(dim=5)
    params = objective.parameters()
    for estimator_class in ESTIMATORS:
        assert estimator_class.stateful and estimator_class.warm_up_steps == 1
        assert estimator_class.warm_up_batch == 4096
        estimator = _updated(estimator_class, objective, params, seed=15)
        assert estimator.evaluations(objective, params) == 1
        assert estimator.state_description().startswith("β = 10 coefficients in [")
        assert estimator.exact_variance(CosOfSum(), CosOfSum().parameters()) is None
