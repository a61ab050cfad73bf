"""rqmc-reparam against known answers: its nets are scrambled Sobol nets, each point uniform and
the scrambles independent, with the variance of ``SobolEngine``'s scramble; the estimate is the
mean of m pathwise gradients, unbiased, below reparam's variance per evaluation, and falling
faster than 1/m on a smooth integrand.

Tolerances: z-tests at Z = 4.5 (two-sided p = 6.8e-6 per statistic; each test states its
Bonferroni bound over the statistics it checks). Variances are sample variances s² of n
i.i.d. values with standard error √((m₄ − s⁴)/n), m₄ the fourth central moment (the delta
method; normal at the n ≥ 2000 used here); a log variance has standard error se(s²)/s².
Uniformity uses Kolmogorov–Smirnov tests at level 1e-5 each.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import kstest
from torch.quasirandom import SobolEngine

from gradbench.core.errors import InputError
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.quasi_monte_carlo import (
    MAX_DIMENSION,
    RandomizedQuasiMonteCarlo,
    inside_unit_interval,
    scrambled_sobol_nets,
)
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianCos, GaussianExp, GaussianSquare

Z = 4.5
KS_LEVEL = 1e-5


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _variance_and_se(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """s² of each column of ``values [n, P]`` and its standard error √((m₄ − s⁴)/n)."""
    n = values.shape[0]
    centred = values - values.mean(0)
    second, fourth = centred.pow(2).mean(0), centred.pow(4).mean(0)
    return values.var(0), ((fourth - second**2) / n).sqrt()


def _smooth_integrand(uniforms: torch.Tensor) -> torch.Tensor:
    """Π_d cos(Φ⁻¹(u_d) + 1) for points ``[..., D]``."""
    return torch.cos(torch.special.ndtri(uniforms) + 1).prod(-1)


def test_every_scramble_is_a_sobol_net():
    """LMS and a digital shift keep the net: each coordinate of the m = 2^k points is one point
    per interval of width 1/m, and the first two coordinates (a (0, k, 2)-net) one point per
    elementary box of area 1/m, of every shape 2^-a × 2^-(k-a). Exact: no false failures."""
    n, m, k = 64, 64, 6
    nets = scrambled_sobol_nets(n, m, 3, _generator(0), torch.float64)
    cells = (nets * m).floor().to(torch.int64)
    assert torch.equal(cells.sort(1).values, torch.arange(m).expand(n, 3, m).transpose(1, 2))
    for a in range(k + 1):
        boxes = (nets[..., 0] * 2**a).floor() * 2 ** (k - a) + (nets[..., 1] * 2 ** (k - a)).floor()
        assert torch.equal(boxes.sort(1).values, torch.arange(m, dtype=torch.float64).expand(n, m))


def test_every_point_is_uniform():
    """Each of the m·D (point, coordinate) pairs is U(0, 1) across scrambles, in its leading
    digits and in the digits below the net's 2^-k resolution (u·m·2¹⁰ mod 1). 16 KS tests at
    1e-5: a false failure below 1.6e-4."""
    nets = scrambled_sobol_nets(20_000, 4, 2, _generator(1), torch.float64)
    for point in nets.unbind(1):
        for coordinate in point.unbind(1):
            fine = torch.frac(coordinate * 4 * 2**10)
            assert kstest(coordinate.numpy(), "uniform").pvalue > KS_LEVEL
            assert kstest(fine.numpy(), "uniform").pvalue > KS_LEVEL


def test_scrambles_are_independent_across_estimates():
    """Consecutive estimates are uncorrelated (a single Sobol stream cut into blocks of m
    would not be): |r| < Z/√(n − 1) for the lag-1 correlation of each coordinate of
    gaussian-cos (k = 1), 2 coordinates, a false failure below 1.4e-5."""
    objective = GaussianCos(k=1)
    n = 20_000
    estimates = RandomizedQuasiMonteCarlo().estimate(
        objective, objective.parameters(), n, _generator(2)
    )
    for column in estimates.T:
        r = torch.corrcoef(torch.stack([column[:-1], column[1:]]))[0, 1]
        assert abs(float(r)) < Z / math.sqrt(n - 1)


@pytest.mark.parametrize(("dimension", "m"), [(1, 16), (3, 32)])
def test_variance_matches_sobol_engines_scramble(dimension, m):
    """The vectorised scramble and one ``SobolEngine(scramble=True)`` per net give the same
    variance of the net's mean of Π cos(Φ⁻¹(u) + 1): |s₁² − s₂²| < Z √(se₁² + se₂²); 2 tests, a
    false failure below 1.4e-5."""
    scrambles = 3000
    ours = _smooth_integrand(
        scrambled_sobol_nets(scrambles, m, dimension, _generator(3), torch.float64)
    ).mean(1)
    engines = torch.stack(
        [
            _smooth_integrand(
                SobolEngine(dimension, scramble=True, seed=seed).draw(m, dtype=torch.float64)
            ).mean(0)
            for seed in range(scrambles)
        ]
    )
    (ours_var,), (ours_se,) = _variance_and_se(ours[:, None])
    (engine_var,), (engine_se,) = _variance_and_se(engines[:, None])
    assert abs(float(ours_var - engine_var)) < Z * math.hypot(ours_se, engine_se)


def test_estimate_is_the_mean_of_pathwise_gradients_over_the_net():
    """On gaussian-square, ∇_μ f = 2(x − k) and ∇_σ f = 2(x − k) ε at x = μ + σε: the estimate
    is their mean over ε_j = Φ⁻¹(u_j) of the net drawn from the same seed, and the run's
    generator advances by the net's draws alone."""
    objective = GaussianSquare(dim=2, mu=0.5, sigma=1.5)
    params = objective.parameters()
    n, m = 32, 8
    run = _generator(4)
    got = RandomizedQuasiMonteCarlo(points=m).estimate(objective, params, n, run)
    same = _generator(4)
    noise = torch.special.ndtri(scrambled_sobol_nets(n, m, 2, same, torch.float64))
    residual = 2 * (params["mu"] + params["sigma"] * noise - objective.k)
    expected = torch.cat([residual.mean(1), (residual * noise).mean(1)], dim=1)
    torch.testing.assert_close(got, expected)
    assert torch.equal(run.get_state(), same.get_state())


def test_one_point_is_plain_monte_carlo():
    """m = 1: the net is one uniform point (the shift alone), so the variance is reparam's
    exact one, within Z·se on both coordinates of gaussian-exp (false failure < 1.4e-5)."""
    objective = GaussianExp()
    params = objective.parameters()
    estimates = RandomizedQuasiMonteCarlo(points=1).estimate(
        objective, params, 20_000, _generator(5)
    )
    variance, se = _variance_and_se(estimates)
    assert ((variance - Reparam().exact_variance(objective, params)).abs() < Z * se).all()


SMOOTH = [
    GaussianSquare(),
    GaussianExp(),
    GaussianCos(),
    GaussianSquare(dim=3),
    GaussianExp(dim=3),
    GaussianCos(dim=3),
]


@pytest.mark.parametrize("objective", SMOOTH, ids=lambda o: f"{o.name}-dim{o.config['dim']}")
def test_unbiased_through_the_engine(objective):
    """The engine's bias z-test against the exact gradient; 6 runs of ≤ 6 coordinates, a false
    failure below 24 · 6.8e-6 = 1.6e-4."""
    config = RunConfig(n_samples=20_000, seed=6, dtype=torch.float64, timing_repeats=0)
    result = run_pair(objective, RandomizedQuasiMonteCarlo(), config)
    assert result.evals_per_sample == 16
    assert result.summary.bias_z_max < Z


@pytest.mark.parametrize("objective", SMOOTH[:3], ids=lambda o: o.name)
def test_variance_per_evaluation_is_below_reparams(objective):
    """m · Var(one estimate) + Z · m · se < reparam's exact per-sample variance, on each
    coordinate at m = 16 (6 coordinates; a false failure needs s² above its truth by Z·se, one
    sided: below 2.1e-5 in all)."""
    params = objective.parameters()
    m = 16
    estimates = RandomizedQuasiMonteCarlo(points=m).estimate(objective, params, 4000, _generator(7))
    variance, se = _variance_and_se(estimates)
    assert (m * (variance + Z * se) < Reparam().exact_variance(objective, params)).all()


def test_variance_falls_faster_than_one_over_m():
    """On gaussian-cos (k = 1, dim 1) the weighted least-squares slope of log Var against
    log m over m = 4 … 256 (weights 1/se(log s²)²) is below −1 by more than Z of its standard
    error, on both coordinates (scrambled nets: about m⁻³ on smooth 1-D integrands, Owen 1997;
    Φ⁻¹'s unbounded derivative at 0 and 1 slows it). 2 one-sided tests: below 6.8e-6."""
    objective = GaussianCos(k=1)
    params = objective.parameters()
    counts = [2**k for k in range(2, 9)]
    generator = _generator(8)
    logs, weights = [], []
    for m in counts:
        estimates = RandomizedQuasiMonteCarlo(points=m).estimate(objective, params, 2000, generator)
        variance, se = _variance_and_se(estimates)
        logs.append(variance.log())
        weights.append((variance / se) ** 2)
    log_m = torch.tensor(counts, dtype=torch.float64).log()[:, None]
    log_variance, weight = torch.stack(logs), torch.stack(weights)
    centred = log_m - (weight * log_m).sum(0) / weight.sum(0)
    spread = (weight * centred**2).sum(0)
    slope = (weight * centred * log_variance).sum(0) / spread
    assert (slope + Z / spread.sqrt() < -1).all()


def test_uniforms_are_kept_strictly_inside_the_unit_interval():
    """0 and 1 move to the dtype's tiny and 1 − eps/2, where Φ⁻¹ is finite; others stay."""
    for dtype in (torch.float32, torch.float64):
        edges = torch.tensor([0.0, 1.0, 0.25], dtype=dtype)
        inside = inside_unit_interval(edges.clone())
        assert torch.isfinite(torch.special.ndtri(inside)).all()
        assert inside[0] > 0 and inside[1] < 1 and inside[2] == edges[2]


def test_points_must_be_a_power_of_two():
    for bad, hint in [(24, "use 16 or 32"), (3, "use 2 or 4"), (0, "use 1 or 2")]:
        with pytest.raises(InputError, match=hint):
            RandomizedQuasiMonteCarlo(points=bad)
    estimator = RandomizedQuasiMonteCarlo(points=64)
    objective = GaussianSquare()
    assert estimator.evaluations(objective, objective.parameters()) == 64
    assert RandomizedQuasiMonteCarlo.evals_formula == "m"


def test_skip_reasons():
    estimator = RandomizedQuasiMonteCarlo()
    assert estimator.skip_reason(GaussianSquare(dim=3)) == ""
    assert "noise by inversion" in estimator.skip_reason(BernoulliToy())
    assert str(MAX_DIMENSION) in estimator.skip_reason(GaussianSquare(dim=MAX_DIMENSION + 1))
