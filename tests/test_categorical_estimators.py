"""The categorical estimators against known answers: IndeCateR exact for one variable,
straight-through and ReinMax against their formulas, Gumbel-softmax trading bias for variance,
Gumbel-Rao below straight-through and falling with its M.

Tolerances: z-tests at Z = 4.5 (two-sided p = 7e-6 per coordinate; with Bonferroni over the
≤ 20 coordinates of a test, a false failure below 1.4e-4 per test). Orderings of variances use
disjoint 95% intervals where the true ratio is far from 1 (a false failure needs both intervals
to miss, below 0.05² = 2.5e-3 even for a true ratio at the edge, far less at the ratios here).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn
from torch.distributions import OneHotCategorical

from gradbench.core.estimator import per_sample_gradients
from gradbench.core.objective import Capability
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.gumbel import gumbel_max
from gradbench.estimators.gumbel_rao import GumbelRao
from gradbench.estimators.indecater import IndeCateR
from gradbench.estimators.reinmax import ReinMax
from gradbench.estimators.relaxation import GumbelSoftmax, StraightThrough
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.categorical import CategoricalProduct, CategoricalToy

Z = 4.5
CONFIG = RunConfig(n_samples=100_000, seed=11, dtype=torch.float64, timing_repeats=0)


def _estimates(estimator, objective, n: int = 512, seed: int = 3) -> torch.Tensor:
    params = objective.parameters()
    return estimator.estimate(objective, params, n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "objective",
    [CategoricalToy(), CategoricalProduct(variables=1, categories=7), BernoulliToy(dim=1)],
    ids=["categorical-toy", "one-categorical", "one-bernoulli"],
)
def test_indecater_is_the_exact_gradient_for_one_variable(objective):
    exact = objective.exact_gradient(objective.parameters())
    estimates = _estimates(IndeCateR(), objective)
    torch.testing.assert_close(estimates, exact.expand_as(estimates), rtol=0, atol=1e-13)


def test_indecater_counts_its_evaluations():
    estimator = IndeCateR()
    for objective, evaluations in [
        (CategoricalProduct(variables=3, categories=4), 12),
        (CategoricalProduct(variables=3, categories=4, coupling=0), 4),  # 3 terms of 1 variable
        (BernoulliToy(dim=5), 10),
    ]:
        assert estimator.evaluations(objective, objective.parameters()) == evaluations


class _WithoutTerms(CategoricalProduct):
    """The separable product, its cost not declared a mean of terms."""

    def cost_terms(self, x, params):
        return None


def test_indecater_with_independent_terms_equals_the_full_evaluation():
    """Setting a variable in every term at once and reading each term's change gives the
    same estimates as setting one variable of the whole cost at a time."""
    with_terms = CategoricalProduct(variables=3, categories=4, coupling=0, spread=0.8)
    without = _WithoutTerms(variables=3, categories=4, coupling=0, spread=0.8)
    torch.testing.assert_close(
        _estimates(IndeCateR(), with_terms), _estimates(IndeCateR(), without), rtol=0, atol=1e-14
    )


def test_indecater_is_unbiased_on_a_coupled_product():
    result = run_pair(CategoricalProduct(variables=3, categories=4), IndeCateR(), CONFIG)
    summary = result.summary
    assert float(summary.variance) > 0  # coupled: the other variables' draws still vary
    assert summary.bias_z_max < Z


def _jacobian_product(probabilities: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    return probabilities * vector - probabilities * (probabilities * vector).sum(-1, keepdim=True)


def test_straight_through_is_the_softmax_jacobian_times_the_cost_gradient():
    """g = (1/τ) J(softmax(z/τ)) ∇f(D) for one categorical whose logits are θ."""
    objective, temperature, n = CategoricalToy(categories=5), 0.7, 256
    params = objective.parameters()
    generator = torch.Generator().manual_seed(4)
    got = StraightThrough(temperature=temperature).estimate(objective, params, n, generator)
    hard, perturbed = gumbel_max(params["logits"], n, torch.Generator().manual_seed(4))
    leaf = hard.clone().requires_grad_()
    (cost_gradient,) = torch.autograd.grad(objective.cost(leaf, params).sum(), leaf)
    soft = torch.softmax(perturbed / temperature, dim=-1)
    torch.testing.assert_close(got, _jacobian_product(soft, cost_gradient) / temperature)


def test_reinmax_equals_the_papers_algorithm():
    """Algorithm 2 of Liu et al. 2023 as a surrogate: D' = π₂ − sg(π₂) + D with
    π₂ = 2 π₁ − ½ π₀ and π₁ = softmax(sg(log π₁ − ℓ) + ℓ), differentiated by autograd."""
    objective, temperature, n = CategoricalProduct(variables=3, categories=4), 1.3, 256
    params = objective.parameters()
    got = ReinMax(temperature=temperature).estimate(
        objective, params, n, torch.Generator().manual_seed(8)
    )
    hard, _ = gumbel_max(params["logits"], n, torch.Generator().manual_seed(8))

    def surrogate(theta):
        logits = theta["logits"]
        first = torch.softmax(logits, dim=-1)
        second = 0.5 * (torch.softmax(logits / temperature, dim=-1) + hard)
        second = torch.softmax((torch.log(second) - logits).detach() + logits, dim=-1)
        heun = 2 * second - 0.5 * first
        return objective.cost(heun - heun.detach() + hard, theta)

    torch.testing.assert_close(got, per_sample_gradients(surrogate, params, n))


def test_gumbel_softmax_trades_bias_for_variance_as_the_temperature_falls():
    """On the coupled product: ‖bias‖ falls and the variance rises as τ falls. The norm's
    error is at most ‖b̂ − b‖, whose square has mean Σ se²: a gap beyond Z · √(Σ se² + Σ se²)
    is a chi-square tail far below 1e-6."""
    config = RunConfig(n_samples=50_000, seed=5, dtype=torch.float64, timing_repeats=0)
    objective = CategoricalProduct()
    summaries = [
        run_pair(objective, GumbelSoftmax(temperature=t), config).summary for t in (2.0, 1.0, 0.5)
    ]
    for hotter, colder in itertools.pairwise(summaries):
        noise = math.sqrt(float((hotter.bias_se**2).sum() + (colder.bias_se**2).sum()))
        assert hotter.bias_norm - colder.bias_norm > Z * noise
        assert colder.variance_ci[0] > hotter.variance_ci[1]
    assert all(s.bias_p < 1e-10 for s in summaries)  # biased at every temperature


@pytest.mark.parametrize(
    "objective",
    [CategoricalProduct(variables=2, categories=3), BernoulliToy(dim=3, target=0.3)],
    ids=["categorical-product", "bernoulli-toy"],
)
def test_gumbel_rao_is_straight_through_rao_blackwellized(objective):
    """E[g_ST | D]: with M = 1 the law of straight-through (equal means, variances within
    their errors); the same mean for every M; the variance falls from M = 1 to 4 to 16 (as
    Var(g_GR,∞) + E[Var(g_ST | D)]/M)."""
    config = RunConfig(n_samples=50_000, seed=13, dtype=torch.float64, timing_repeats=0)
    straight = run_pair(objective, StraightThrough(), config).summary
    rao = {m: run_pair(objective, GumbelRao(samples=m), config).summary for m in (1, 4, 16)}

    def z_means(a, b) -> float:
        return float(((a.mean - b.mean).abs() / torch.sqrt(a.bias_se**2 + b.bias_se**2)).max())

    for m in (1, 4, 16):
        assert z_means(rao[m], straight) < Z

    def variance_se(summary) -> float:  # from the 95% interval's width
        return (summary.variance_ci[1] - summary.variance_ci[0]) / (2 * 1.96)

    gap = abs(float(rao[1].variance) - float(straight.variance))
    assert gap < Z * math.hypot(variance_se(rao[1]), variance_se(straight))
    assert rao[4].variance_ci[1] < rao[1].variance_ci[0]
    assert rao[16].variance_ci[1] < rao[4].variance_ci[0]


def test_a_users_one_hot_model_gets_the_categorical_estimators():
    """A ModelObjective of two OneHotCategorical choices offers the categorical structure,
    passes its check, and IndeCateR's mean is the gradient enumerated over the 16 outcomes."""
    import gradbench
    from gradbench.extend.objective_conformance import check_objective

    torch.manual_seed(0)
    policy, state, reward = nn.Linear(3, 8), torch.tensor([1.0, -0.5, 0.2]), torch.randn(4)
    Choices = gradbench.ModelObjective.define(
        "two-choices",
        "two categorical choices of four",
        module=policy,
        distribution=lambda net: OneHotCategorical(logits=net(state).unflatten(-1, (2, 4))),
        cost=lambda x: ((x @ reward.to(x)).sum(-1) - 0.3) ** 2,
        relaxed_cost=True,
    )
    outcomes = torch.eye(4, dtype=torch.float64)[torch.cartesian_prod(*[torch.arange(4)] * 2)]

    class EnumeratedChoices(Choices):  # J by enumeration: an exact reference, a quick check
        def expected_cost(self, params):
            weights = self.distribution(params).log_prob(outcomes.to(params["weight"])).exp()
            return weights @ self.cost(outcomes.to(params["weight"]), params)

    objective = EnumeratedChoices()
    assert {Capability.CATEGORICAL, Capability.RELAXED_COST} <= objective.capabilities()
    assert check_objective(objective).passed
    exact = objective.exact_gradient(objective.parameters())
    estimates = _estimates(IndeCateR(), objective, n=20_000)
    se = estimates.std(0) / math.sqrt(estimates.shape[0])
    assert float(((estimates.mean(0) - exact).abs() / se).max()) < Z
