"""The estimator catalogue against the survey's and the papers' known answers.

Exact values come from closed forms, quadrature (tests/reference.py) or enumeration, never from
gradbench. Each check is a z-test with |z| < Z = 4.5 on the exact standard error of the
statistic (6.8e-6 per check under the normal approximation, ~2e-4 for this file's ~30 checks).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from reference import Moments, expectation, moments, two_point_moments

from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.augment_reinforce_merge import AugmentReinforceMerge, DisARM
from gradbench.estimators.finite_difference import CentralDifference
from gradbench.estimators.measure_valued import CoupledMeasureValued
from gradbench.estimators.optimal_baseline import OptimalBaseline
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.relaxation import GumbelSoftmax
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import BatchMean, LeaveOneOut
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.categorical import CategoricalToy
from gradbench.objectives.gaussian import GaussianCos, GaussianSquare
from gradbench.objectives.implicit import BetaSquare, DirichletSquare, GammaSquare

Z = 4.5
N = 1_000_000
CONFIG = RunConfig(n_samples=N, seed=7, dtype=torch.float64, timing_repeats=0)

LAGUERRE_NODES, LAGUERRE_WEIGHTS = np.polynomial.laguerre.laggauss(80)


def rayleigh_expectation(function) -> float:
    """E[function(R)], R ~ Rayleigh(1): with u = R²/2 ~ Exp(1), Gauss–Laguerre in u."""
    return float(np.sum(LAGUERRE_WEIGHTS * function(np.sqrt(2 * LAGUERRE_NODES))))


def rayleigh_moments(estimate) -> Moments:
    mean = rayleigh_expectation(estimate)
    variance = rayleigh_expectation(lambda r: (estimate(r) - mean) ** 2)
    fourth = rayleigh_expectation(lambda r: (estimate(r) - mean) ** 4)
    return Moments(mean, variance, fourth)


def assert_mean_and_variance(summary, coordinate: int, exact: Moments, what: str) -> None:
    mean = float(summary.mean[coordinate])
    z_mean = (mean - exact.mean) / math.sqrt(exact.variance / N)
    assert abs(z_mean) < Z, f"{what}: mean {mean:.6g}, exact {exact.mean:.6g}, z = {z_mean:.2f}"
    variance = float(summary.coordinate_variance[coordinate])
    z_var = (variance - exact.variance) / math.sqrt(exact.variance_of_sample_variance(N))
    assert abs(z_var) < Z, f"{what}: variance {variance:.6g}, exact {exact.variance:.6g}"


# --- The survey's Figure 2/3 setting: x ~ N(1, 1), per-sample variance of ∂/∂μ -----------------


@pytest.mark.parametrize(
    ("k", "score_function", "optimal", "coupled"),
    [(1, 15, 6, 0), (3, 87, 38, 4.37), (-3, 495, 134, 17.5)],
)
def test_survey_reference_values_are_the_exact_ones(k, score_function, optimal, coupled):
    """The survey's rounded numbers against the exact values this file tests with."""
    a = 1.0 - k
    assert moments(lambda e: (e + a) ** 2 * e).variance == pytest.approx(score_function)
    assert optimal_baseline_moments(k).variance == pytest.approx(optimal, abs=0.5)
    assert coupled_mvd_moments(lambda x: (x - k) ** 2).variance == pytest.approx(coupled, abs=0.05)


def optimal_baseline_moments(k: float) -> Moments:
    """g = (f − b*) ε with b* = E[f ε²] / E[ε²], f = (1 + ε − k)²."""
    baseline = expectation(lambda e: (1 + e - k) ** 2 * e**2)
    return moments(lambda e: ((1 + e - k) ** 2 - baseline) * e)


def coupled_mvd_moments(cost) -> Moments:
    """∂/∂μ at μ = σ = 1: g = (f(1 + R) − f(1 − R)) / √(2π)."""
    return rayleigh_moments(lambda r: (cost(1 + r) - cost(1 - r)) / math.sqrt(2 * math.pi))


@pytest.mark.parametrize("k", [1.0, 3.0, -3.0])
def test_optimal_baseline_reaches_the_optimal_variance(k):
    # A pilot of 10⁶ draws leaves its own error O(1/pilot) far below the tolerance.
    result = run_pair(GaussianSquare(k=k), OptimalBaseline(pilot=1_000_000), CONFIG)
    assert_mean_and_variance(result.summary, 0, optimal_baseline_moments(k), f"k={k}")


@pytest.mark.parametrize("k", [3.0, -3.0])
def test_coupled_measure_valued_gradient(k):
    result = run_pair(GaussianSquare(k=k), CoupledMeasureValued(), CONFIG)
    assert_mean_and_variance(result.summary, 0, coupled_mvd_moments(lambda x: (x - k) ** 2), "mvd")


def test_coupled_measure_valued_is_exact_at_the_symmetric_point():
    """k = μ = 1: f(1 + R) = f(1 − R), so every ∂μ estimate is 0 up to rounding."""
    result = run_pair(GaussianSquare(k=1.0), CoupledMeasureValued(), CONFIG)
    assert float(result.summary.coordinate_variance[0]) < 1e-25


@pytest.mark.parametrize(
    ("estimator", "approx", "exact"),
    [
        (Reinforce(), 0.5, lambda e: np.cos(5 * (1 + e)) * e),
        (Reparam(), 12.5, lambda e: -5 * np.sin(5 * (1 + e))),
    ],
    ids=["score-function", "pathwise"],
)
def test_survey_cosine_values(estimator, approx, exact):
    reference = moments(exact)
    assert reference.variance == pytest.approx(approx, rel=0.02)
    result = run_pair(GaussianCos(k=5.0), estimator, CONFIG)
    assert_mean_and_variance(result.summary, 0, reference, estimator.name)


def test_survey_cosine_value_measure_valued():
    reference = coupled_mvd_moments(lambda x: np.cos(5 * x))
    assert reference.variance == pytest.approx(0.30, abs=0.01)
    result = run_pair(GaussianCos(k=5.0), CoupledMeasureValued(), CONFIG)
    assert_mean_and_variance(result.summary, 0, reference, "mvd cos")


# --- Bernoulli toy at θ = 0 -----------------------------------------------------------------------


def leave_one_out_moments(target: float, draws: int = 2) -> Moments:
    """Enumerate the 2^K outcomes at p = ½ of g = (1/K) Σ_k (f_k − mean of others)(b_k − ½)."""
    values = []
    for outcome in itertools.product((0, 1), repeat=draws):
        costs = [(b - target) ** 2 for b in outcome]
        total = sum(costs)
        values.append(
            sum(
                (c - (total - c) / (draws - 1)) * (b - 0.5)
                for c, b in zip(costs, outcome, strict=True)
            )
            / draws
        )
    mean = float(np.mean(values))
    central = np.array(values) - mean
    return Moments(mean, float(np.mean(central**2)), float(np.mean(central**4)))


def arm_moments(target: float) -> Moments:
    """At θ = 0, g = (1 − 2t) |u − ½| with |u − ½| ~ U(0, ½): variance (1 − 2t)²/48."""
    scale = 1 - 2 * target
    return Moments(scale / 4, scale**2 / 48, scale**4 * 0.5**4 / 80)


@pytest.mark.parametrize(
    ("target", "reinforce", "leave_one_out", "arm"),
    [(0.499, 0.015625, 2.5e-7, 8.33e-8), (0.45, 0.01594, 6.25e-4, 2.08e-4)],
)
def test_bernoulli_reference_values_are_the_exact_ones(target, reinforce, leave_one_out, arm):
    p = 0.5
    exact_reinforce = two_point_moments((-(target**2) * p, (1 - target) ** 2 * (1 - p)), p)
    assert exact_reinforce.variance == pytest.approx(reinforce, rel=2e-3)
    assert leave_one_out_moments(target).variance == pytest.approx(leave_one_out, rel=1e-3)
    assert arm_moments(target).variance == pytest.approx(arm, rel=2e-3)


@pytest.mark.parametrize("target", [0.499, 0.45])
@pytest.mark.parametrize(
    ("estimator", "exact"),
    [(LeaveOneOut(), leave_one_out_moments), (AugmentReinforceMerge(), arm_moments)],
    ids=["rloo", "arm"],
)
def test_bernoulli_variance_reduction(estimator, exact, target):
    result = run_pair(BernoulliToy(target=target), estimator, CONFIG)
    assert_mean_and_variance(result.summary, 0, exact(target), f"{estimator.name} t={target}")


@pytest.mark.parametrize("target", [0.499, 0.45])
def test_disarm_is_exact_at_theta_zero(target):
    result = run_pair(BernoulliToy(target=target), DisARM(), CONFIG)
    assert result.summary.variance == 0.0
    assert float(result.summary.mean[0]) == pytest.approx(0.25 * (1 - 2 * target), rel=1e-12)


def test_batch_mean_baseline_shrinks_the_gradient_by_one_over_k():
    """E[g] = (1 − 1/K) ∇J: the bias the table must show."""
    config = RunConfig(n_samples=400_000, seed=3, dtype=torch.float64, timing_repeats=0)
    result = run_pair(GaussianSquare(k=3.0), BatchMean(K=4), config)
    summary = result.summary
    expected = 0.75 * summary.reference
    z = (summary.mean - expected).abs() / summary.bias_se
    assert float(z.max()) < Z
    assert summary.bias_p < 1e-10  # the bias is detected


def test_gumbel_softmax_trades_bias_for_variance_as_the_temperature_falls():
    config = RunConfig(n_samples=200_000, seed=5, dtype=torch.float64, timing_repeats=0)
    objective = BernoulliToy(target=0.3)
    summaries = [
        run_pair(objective, GumbelSoftmax(temperature=t), config).summary for t in (2.0, 1.0, 0.5)
    ]
    for hotter, colder in itertools.pairwise(summaries):
        bias_gap = float(hotter.bias.abs()[0] - colder.bias.abs()[0])
        assert bias_gap > Z * math.hypot(float(hotter.bias_se[0]), float(colder.bias_se[0]))
        assert colder.variance_ci[0] > hotter.variance_ci[1]  # disjoint 95% intervals
    assert all(s.bias_p < 1e-10 for s in summaries)  # biased at every temperature


# --- Categorical toy: exact gradient and REINFORCE moments by enumeration ---------------------


def test_categorical_gradient_and_reinforce_by_enumeration():
    objective = CategoricalToy(categories=5, spread=1.5, target=1.2)
    logits = objective.parameters()["logits"].numpy()
    p = np.exp(logits) / np.exp(logits).sum()
    costs = (np.arange(5) - 1.2) ** 2
    J = float(p @ costs)
    gradient = p * (costs - J)  # ∂J/∂θ_k = p_k (c_k − J)
    exact = objective.exact_gradient(objective.parameters()).numpy()
    np.testing.assert_allclose(exact, gradient, rtol=1e-12)

    result = run_pair(objective, Reinforce(), CONFIG)
    for k in range(5):
        # g_k = f(x) (1[x = k] − p_k): enumerate the 5 outcomes x with probabilities p.
        values = costs * ((np.arange(5) == k) - p[k])
        mean = float(p @ values)
        central = values - mean
        reference = Moments(mean, float(p @ central**2), float(p @ central**4))
        assert_mean_and_variance(result.summary, k, reference, f"logits[{k}]")


# --- Implicit reparameterization: Gamma --------------------------------------------------------


def gamma_raw_moment(order: int, alpha: float, beta: float) -> float:
    """E[x^m] = α(α + 1)…(α + m − 1) / β^m for x ~ Gamma(α, rate β)."""
    return math.prod(alpha + i for i in range(order)) / beta**order


def test_gamma_pathwise_through_implicit_reparameterization():
    alpha, beta = 2.5, 1.5
    objective = GammaSquare(concentration=alpha, rate=beta)
    result = run_pair(objective, Reparam(), CONFIG)
    summary = result.summary
    # ∂/∂α: unbiased against the exact gradient, with the measured standard error.
    z = abs(float(summary.bias[0])) / float(summary.bias_se[0])
    assert z < Z, f"∂/∂α: z = {z:.2f}"
    # ∂/∂β: x = s/β, so g = ∂(x²)/∂β = −2x²/β; its moments follow from Gamma's raw moments.
    m = [gamma_raw_moment(k, alpha, beta) for k in range(9)]
    mean = -2 * m[2] / beta
    central = [  # E[(x² − E x²)^k], k = 2, 4, by the binomial expansion
        sum(math.comb(k, i) * m[2 * i] * (-m[2]) ** (k - i) for i in range(k + 1)) for k in (2, 4)
    ]
    exact = Moments(mean, 4 / beta**2 * central[0], 16 / beta**4 * central[1])
    assert_mean_and_variance(summary, 1, exact, "∂/∂β")


def test_finite_differences_skip_objectives_without_common_noise():
    result = run_pair(GammaSquare(), CentralDifference(), CONFIG)
    assert result.status == "skipped" and "common noise" in result.reason


@pytest.mark.parametrize(
    "objective",
    [BetaSquare(a=2.0, b=3.0, dim=2), DirichletSquare(categories=4), GammaSquare(dim=2)],
    ids=lambda o: o.name,
)
def test_pathwise_is_unbiased_for_every_implicitly_reparameterized_family(objective):
    result = run_pair(objective, Reparam(), CONFIG)
    assert result.status == "ok", result.reason
    assert result.summary.bias_p > 1e-4  # Bonferroni p of an unbiased estimator: P(< 1e-4) ≤ 1e-4


@pytest.mark.parametrize(
    "objective", [BetaSquare(a=0.7, b=2.2), DirichletSquare(categories=3, alpha=0.8)]
)
def test_implicit_family_exact_gradients_against_differences_of_the_expectation(objective):
    params = objective.parameters()
    exact = objective.exact_gradient(params)
    name = next(iter(params))
    step = 1e-6
    numeric = []
    for j in range(params[name].numel()):
        up, down = params[name].clone(), params[name].clone()
        up[j] += step
        down[j] -= step
        difference = objective.expected_cost({**params, name: up}) - objective.expected_cost(
            {**params, name: down}
        )
        numeric.append(float(difference) / (2 * step))
    np.testing.assert_allclose(exact[: len(numeric)].numpy(), numeric, rtol=1e-6)


class ShiftedSquare(GaussianSquare):
    """(x − s)² with the shift s a parameter that enters the cost only (its score is 0)."""

    name = "shifted-square"

    def parameters(self):
        return {**super().parameters(), "shift": torch.tensor([0.5], dtype=torch.float64)}

    def cost(self, x, params):
        return ((x - params["shift"]) ** 2).sum(-1)

    def expected_cost(self, params):
        shift = params["shift"]
        return ((params["mu"] - shift) ** 2 + params["sigma"] ** 2).sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_optimal_baseline_with_a_parameter_that_only_the_cost_sees(dtype):
    config = RunConfig(n_samples=100_000, seed=2, dtype=dtype, timing_repeats=0)
    result = run_pair(ShiftedSquare(), OptimalBaseline(), config)
    assert result.summary.n_nonfinite == 0
    assert result.summary.bias_p > 1e-4  # unbiased: P(p < 1e-4) ≤ 1e-4
