"""Exact per-sample variances (gradbench.analysis.exact_variance) against closed forms and
Monte Carlo.

Closed forms: docs/measurement.md's table for f = (x − k)², and for the measure-valued estimators
the moments of the Rayleigh (E R = √(π/2), Var R = 2 − π/2, Var R² = 4) and double-sided Maxwell
(E M² = 3, E M⁴ = 15) laws, worked out in each test. The Monte Carlo check is a z-test of the
sample variance of n seeded estimates against the exact value, on the standard error of the
sample variance estimated from the same draws, √((m₄ − s⁴)/n); |z| < 4.5 fails a correct
formula with probability 6.8e-6 per check (normal approximation), about 2e-4 for this file's
28 checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import expectation

from gradbench.estimators.measure_valued import CoupledMeasureValued, UncoupledMeasureValued
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import LeaveOneOut
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianCos, GaussianExp, GaussianSquare

CASES = [(1.0, 1.0, 3.0), (1.0, 1.0, 1.0), (1.0, 1.0, -3.0), (0.5, 2.0, -1.0), (-1.0, 0.5, 0.0)]
RAYLEIGH_VARIANCE = 2 - math.pi / 2


def exact(estimator, objective) -> list[float]:
    return estimator.exact_variance(objective, objective.parameters()).tolist()


@pytest.mark.parametrize(("mu", "sigma", "k"), CASES)
def test_square_matches_the_closed_forms(mu, sigma, k):
    objective = GaussianSquare(mu=mu, sigma=sigma, k=k)
    a = mu - k
    closed = {
        Reinforce(): [
            (a**4 + 14 * a**2 * sigma**2 + 15 * sigma**4) / sigma**2,
            2 * (a**4 + 30 * a**2 * sigma**2 + 37 * sigma**4) / sigma**2,
        ],
        Reparam(): [4 * sigma**2, 4 * a**2 + 8 * sigma**2],
        # g_μ = 4aR/√(2π); g_σ = 2aM(1 − U) + σM²(1 − U²), E g_σ² = 4a² + 8σ², E g_σ = 2σ.
        CoupledMeasureValued(): [
            16 * a**2 * RAYLEIGH_VARIANCE / (2 * math.pi),
            4 * a**2 + 4 * sigma**2,
        ],
        # Var (a ± σR)² = 4a²σ² Var R + σ⁴ Var R² ∓ 4aσ³ Cov(R, R²), summed over the two terms;
        # Var (a + σM)² = 12a²σ² + 6σ⁴ and Var (a + σZ)² = 4a²σ² + 2σ⁴.
        UncoupledMeasureValued(): [
            2 * (4 * a**2 * sigma**2 * RAYLEIGH_VARIANCE + 4 * sigma**4) / (2 * math.pi * sigma**2),
            16 * a**2 + 8 * sigma**2,
        ],
    }
    for estimator, variances in closed.items():
        assert exact(estimator, objective) == pytest.approx(variances, rel=1e-10, abs=1e-12)


def test_x_squared_sigma_coordinate_matches_design():
    mu, sigma = 0.7, 1.3
    objective = GaussianSquare(mu=mu, sigma=sigma, k=0.0)
    assert exact(Reparam(), objective)[1] == pytest.approx(4 * mu**2 + 8 * sigma**2, rel=1e-12)
    score = 2 * (mu**4 + 30 * mu**2 * sigma**2 + 37 * sigma**4) / sigma**2
    assert exact(Reinforce(), objective)[1] == pytest.approx(score, rel=1e-12)


@pytest.mark.parametrize(("k", "sigma"), [(5.0, 1.0), (10.0, 1.0), (45.0, 1.0), (20.0, 2.0)])
def test_fast_oscillations_are_resolved(k, sigma):
    """Pathwise on cos(kx): Var = k²(1 − cos(2kμ)e^{−2k²σ²})/2 − k² sin²(kμ) e^{−k²σ²}."""
    mu = 1.0
    objective = GaussianCos(mu=mu, sigma=sigma, k=k)
    d_mu = (k**2 / 2) * (1 - math.cos(2 * k * mu) * math.exp(-2 * (k * sigma) ** 2))
    d_mu -= k**2 * math.sin(k * mu) ** 2 * math.exp(-((k * sigma) ** 2))
    assert exact(Reparam(), objective)[0] == pytest.approx(d_mu, rel=1e-10)


@pytest.mark.parametrize(
    ("objective", "cost"),
    [
        (GaussianCos(mu=0.3, sigma=0.8, k=2.0), lambda x: np.cos(2.0 * x)),
        (GaussianExp(mu=1.0, sigma=1.2, k=0.7), lambda x: np.exp(-0.7 * x**2)),
    ],
    ids=["cos", "exp"],
)
def test_coupled_sigma_matches_a_two_dimensional_quadrature(objective, cost):
    """g_σ = (c(μ + σM) − c(μ + σMU))/σ integrated over M (Gauss–Hermite with weight ε², the
    Maxwell density) and U (Gauss–Legendre), independently of the one-dimensional reduction."""
    mu, sigma = objective.setting("mu"), objective.setting("sigma")
    nodes, weights = np.polynomial.legendre.leggauss(64)
    u, w = (nodes + 1) / 2, weights / 2

    def moment(power):
        def given_m(m):
            shrunk = cost(mu + sigma * m[:, None] * u)  # [Q, U]
            return m**2 * (((cost(mu + sigma * m)[:, None] - shrunk) / sigma) ** power @ w)

        return expectation(given_m)

    reference = moment(2) - moment(1) ** 2
    assert exact(CoupledMeasureValued(), objective)[1] == pytest.approx(reference, rel=1e-9)


def test_absent_where_unknown():
    assert Reinforce().exact_variance(BernoulliToy(), BernoulliToy().parameters()) is None
    assert LeaveOneOut().exact_variance(GaussianSquare(), GaussianSquare().parameters()) is None
    heavy = GaussianExp(k=-0.1)  # exp(0.2 x²): the quadrature does not reach its tails
    assert Reparam().exact_variance(heavy, heavy.parameters()) is None


def test_one_value_per_coordinate_in_parameter_order():
    objective = GaussianSquare(dim=3, k=2.0)
    variance = Reparam().exact_variance(objective, objective.parameters())
    assert variance.shape == (6,) and variance.dtype == torch.float64
    assert variance[:3].tolist() == pytest.approx([4.0] * 3)  # ∂μ first, then ∂σ
    assert variance[3:].tolist() == pytest.approx([4 * 1 + 8] * 3)


N = 200_000
Z = 4.5
MONTE_CARLO_CASES = [
    (GaussianSquare(k=3.0), Reinforce()),
    (GaussianSquare(k=3.0), Reparam()),
    (GaussianSquare(k=3.0), CoupledMeasureValued()),
    (GaussianExp(k=2.0), Reinforce()),
    (GaussianExp(k=2.0), CoupledMeasureValued()),
    (GaussianExp(k=2.0), UncoupledMeasureValued()),
    (GaussianCos(k=2.0, sigma=0.8), Reparam()),
    (GaussianCos(k=2.0, sigma=0.8), UncoupledMeasureValued()),
    # Two coordinates: the score function carries the other coordinate's cost.
    (GaussianSquare(dim=2, mu=0.5, k=1.0), Reinforce()),
    (GaussianCos(dim=2, k=1.5), Reinforce()),
    (GaussianExp(dim=2, k=0.5), CoupledMeasureValued()),
]


@pytest.mark.parametrize(
    ("objective", "estimator"),
    MONTE_CARLO_CASES,
    ids=[f"{o.name}-dim{int(o.setting('dim'))}-{e.name}" for o, e in MONTE_CARLO_CASES],
)
def test_measured_variance_agrees_within_its_standard_error(objective, estimator):
    params = objective.parameters()
    generator = torch.Generator().manual_seed(20240607)
    estimates = estimator.estimate(objective, params, N, generator)  # [N, P] float64
    centred = estimates - estimates.mean(0)
    sample_variance = centred.pow(2).sum(0) / (N - 1)
    standard_error = torch.sqrt((centred.pow(4).mean(0) - sample_variance**2) / N)
    z = (sample_variance - estimator.exact_variance(objective, params)) / standard_error
    assert z.abs().max() < Z, f"z = {z.tolist()}"
