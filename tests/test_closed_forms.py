"""The harness against exact answers: gradients, per-coordinate means and variances.

Exact values come from the closed forms of docs/measurement.md and from Gauss–Hermite quadrature
(tests/reference.py), never from gradbench. Each check is a z-test with |z| < Z on the exact
standard error of the statistic; Z = 4.5 gives a false-failure rate of 6.8e-6 per check under
the normal approximation, about 3e-4 for the ~40 checks of this file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import Moments, expectation, moments, two_point_moments

from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.finite_difference import CentralDifference
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianCos, GaussianExp, GaussianSquare

Z = 4.5
N = 1_000_000
CONFIG = RunConfig(n_samples=N, seed=11, dtype=torch.float64, timing_repeats=0)

# (mu, sigma, k) for the Gaussian checks.
GAUSSIAN_CASES = [(1.0, 1.0, 3.0), (1.0, 1.0, 1.0), (0.5, 2.0, -1.0), (-1.0, 0.5, 0.0)]


def square_estimates(mu: float, sigma: float, k: float):
    """Per-sample estimates of (∂μ, ∂σ) of E(x − k)², as functions of ε, per estimator."""

    def cost(e):
        return (mu + sigma * e - k) ** 2

    return {
        "reinforce": (lambda e: cost(e) * e / sigma, lambda e: cost(e) * (e**2 - 1) / sigma),
        "reparam": (
            lambda e: 2 * (mu + sigma * e - k),
            lambda e: 2 * (mu + sigma * e - k) * e,
        ),
    }


def assert_close(measured: float, exact: float, standard_error: float, what: str) -> None:
    z = (measured - exact) / standard_error
    assert abs(z) < Z, f"{what}: measured {measured:.6g}, exact {exact:.6g}, z = {z:.2f}"


@pytest.mark.parametrize(("mu", "sigma", "k"), GAUSSIAN_CASES)
def test_design_closed_forms_agree_with_quadrature(mu, sigma, k):
    a = mu - k
    estimates = square_estimates(mu, sigma, k)
    closed = {
        ("reinforce", 0): (a**4 + 14 * a**2 * sigma**2 + 15 * sigma**4) / sigma**2,
        ("reinforce", 1): 2 * (a**4 + 30 * a**2 * sigma**2 + 37 * sigma**4) / sigma**2,
        ("reparam", 0): 4 * sigma**2,
        ("reparam", 1): 4 * a**2 + 8 * sigma**2,
    }
    for (name, coordinate), variance in closed.items():
        exact = moments(estimates[name][coordinate])
        assert exact.variance == pytest.approx(variance, rel=1e-10)
        assert exact.mean == pytest.approx([2 * a, 2 * sigma][coordinate], rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("estimator", [Reinforce(), Reparam()], ids=lambda e: e.name)
@pytest.mark.parametrize(("mu", "sigma", "k"), GAUSSIAN_CASES)
def test_measured_mean_and_variance_match_exact(estimator, mu, sigma, k):
    objective = GaussianSquare(mu=mu, sigma=sigma, k=k)
    result = run_pair(objective, estimator, CONFIG)
    assert result.status == "ok", result.reason
    summary = result.summary
    for coordinate, estimate in enumerate(square_estimates(mu, sigma, k)[estimator.name]):
        exact = moments(estimate)
        label = f"{estimator.name} {result.labels[coordinate]} at mu={mu} sigma={sigma} k={k}"
        assert_close(
            float(summary.mean[coordinate]),
            exact.mean,
            math.sqrt(exact.variance / N),
            f"mean of {label}",
        )
        assert_close(
            float(summary.coordinate_variance[coordinate]),
            exact.variance,
            math.sqrt(exact.variance_of_sample_variance(N)),
            f"variance of {label}",
        )
    assert summary.variance == pytest.approx(float(summary.coordinate_variance.sum()))


@pytest.mark.parametrize(
    ("objective", "derivative"),
    [
        (GaussianSquare(mu=0.3, sigma=1.7, k=-2.0), lambda x: 2 * (x + 2.0)),
        (GaussianExp(mu=0.3, sigma=1.7, k=0.8), lambda x: -1.6 * x * np.exp(-0.8 * x**2)),
        (GaussianCos(mu=0.3, sigma=1.7, k=2.5), lambda x: -2.5 * np.sin(2.5 * x)),
    ],
    ids=lambda o: getattr(o, "name", ""),
)
def test_exact_gradient_matches_quadrature(objective, derivative):
    mu, sigma = 0.3, 1.7
    d_mu = expectation(lambda e: derivative(mu + sigma * e))
    d_sigma = expectation(lambda e: derivative(mu + sigma * e) * e)
    exact = objective.exact_gradient(objective.parameters())
    assert exact.tolist() == pytest.approx([d_mu, d_sigma], rel=1e-9, abs=1e-12)


def test_exact_expectation_matches_quadrature_for_each_gaussian_cost():
    for objective, cost in [
        (GaussianExp(mu=-0.7, sigma=0.6, k=1.3), lambda x: np.exp(-1.3 * x**2)),
        (GaussianCos(mu=-0.7, sigma=0.6, k=5.0), lambda x: np.cos(5.0 * x)),
    ]:
        exact = float(objective.expected_cost(objective.parameters()))
        reference = expectation(lambda e, cost=cost: cost(-0.7 + 0.6 * e))
        assert exact == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize(("logit", "target"), [(0.0, 0.499), (0.0, 0.45), (-1.2, 0.3)])
def test_bernoulli_gradient_by_enumeration(logit, target):
    objective = BernoulliToy(logit=logit, target=target)
    p = 1 / (1 + math.exp(-logit))
    # Enumerate b ∈ {0, 1}: J = p f(1) + (1 − p) f(0), dJ/dθ = p(1 − p)(f(1) − f(0)).
    enumerated = p * (1 - p) * ((1 - target) ** 2 - target**2)
    assert float(objective.exact_gradient(objective.parameters())) == pytest.approx(enumerated)
    assert enumerated == pytest.approx(p * (1 - p) * (1 - 2 * target))


def bernoulli_reinforce_moments(logit: float, target: float) -> Moments:
    """g = f(b)(b − p): g = (1 − t)²(1 − p) w.p. p, −t² p w.p. 1 − p."""
    p = 1 / (1 + math.exp(-logit))
    return two_point_moments((-(target**2) * p, (1 - target) ** 2 * (1 - p)), p)


def test_bernoulli_design_reference_value():
    exact = bernoulli_reinforce_moments(0.0, 0.499)
    assert exact.mean == pytest.approx(5e-4)
    assert exact.variance == pytest.approx(0.0156251, abs=5e-8)


@pytest.mark.parametrize(("logit", "target"), [(0.0, 0.499), (0.0, 0.45), (-1.2, 0.3)])
def test_bernoulli_reinforce_reproduces_exact_variance_and_gradient(logit, target):
    result = run_pair(BernoulliToy(logit=logit, target=target), Reinforce(), CONFIG)
    exact = bernoulli_reinforce_moments(logit, target)
    summary = result.summary
    assert float(summary.reference[0]) == pytest.approx(exact.mean)
    assert_close(float(summary.mean[0]), exact.mean, math.sqrt(exact.variance / N), "mean")
    assert_close(
        summary.variance,
        exact.variance,
        math.sqrt(exact.variance_of_sample_variance(N)),
        "variance",
    )


def test_reparam_is_skipped_on_bernoulli_with_reason():
    result = run_pair(BernoulliToy(), Reparam(), CONFIG)
    assert result.status == "skipped"
    assert "rsample" in result.reason and "bernoulli-toy" in result.reason


def test_fd_equals_pathwise_on_a_quadratic_with_common_random_numbers():
    """Central differences are exact for a quadratic: with the same ε, fd ≡ reparam."""
    objective = GaussianSquare(mu=0.7, sigma=1.3, k=2.0)
    params = objective.parameters()
    fd = CentralDifference().estimate(objective, params, 1000, torch.Generator().manual_seed(5))
    pathwise = Reparam().estimate(objective, params, 1000, torch.Generator().manual_seed(5))
    torch.testing.assert_close(fd, pathwise, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fd_is_near_unbiased_on_gaussian_square(dtype):
    objective = GaussianSquare(mu=1.0, sigma=1.0, k=3.0)
    config = RunConfig(n_samples=N, seed=3, dtype=dtype, timing_repeats=0)
    result = run_pair(objective, CentralDifference(), config)
    assert result.evals_per_sample == 4
    summary = result.summary
    exact = [moments(f) for f in square_estimates(1.0, 1.0, 3.0)["reparam"]]
    for coordinate, m in enumerate(exact):
        assert_close(float(summary.mean[coordinate]), m.mean, math.sqrt(m.variance / N), "mean")
    assert summary.bias_p > 1e-4  # Bonferroni p of an unbiased estimator: P(p < 1e-4) ≤ 1e-4
