"""The K-sample importance-weighted bounds and their estimators against known answers.

Objectives: ``iwae-linear-gaussian`` (exact by quadrature for K·d ≤ 4; at q = the posterior
every weight is p(x), so J = log p(x) for every K) and ``iwae-discrete`` (exact by enumeration).
Estimators: ``reparam`` and ``reinforce`` (the plain IWAE gradients), ``dreg`` and ``vimco``
(unbiased for every K), ``stl`` (unbiased for K = 1 only).

Tolerances: mean tests are z-tests at Z = 4.5 per coordinate (two-sided p = 6.8e-6; with
Bonferroni over the ≤ 8 coordinates of a test, a false failure below 5.4e-5 per test). A test
that an estimator is biased needs z > 10 on some coordinate where the bias is many times that
(it cannot pass by chance, and fails only if the bias were absent). Variance orderings use
disjoint 95% intervals (a false failure below 0.05² = 2.5e-3 at the edge, far less at the
ratios here, which are 10× and more).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import roots_hermitenorm

from gradbench.core.importance_weights import bound
from gradbench.core.objective import flat_gradient
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.importance_weighted import (
    DoublyReparameterized,
    StickingTheLanding,
    Vimco,
    leave_one_out_bounds,
)
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.importance_weighted import (
    DiscreteBound,
    LinearGaussianBound,
    gauss_hermite_blocks,
)

Z = 4.5
CONFIG = RunConfig(n_samples=40_000, seed=5, dtype=torch.float64, timing_repeats=0)


def _estimates(estimator, objective, n: int = 20_000, seed: int = 3) -> torch.Tensor:
    params = objective.parameters()
    return estimator.estimate(objective, params, n, torch.Generator().manual_seed(seed))


def _z(estimates: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """|mean − exact| / standard error per coordinate (0 where both are exact)."""
    error = estimates.std(0) / math.sqrt(estimates.shape[0])
    gap = (estimates.mean(0) - exact).abs()
    return torch.where(error > 0, gap / error.clamp_min(1e-300), gap * math.inf)


def _posterior(particles: int, dim: int = 1, mu: float = 0.3, x: float = 1.0):
    """The linear-Gaussian bound with q at the exact posterior N((μ + x)/2, I/2)."""
    return LinearGaussianBound(
        particles=particles, dim=dim, mu=mu, x=x, loc=(mu + x) / 2, scale=2**-0.5
    )


# -- the objectives ---------------------------------------------------------------------------


@pytest.mark.parametrize("particles", [1, 2, 4])
def test_at_the_posterior_the_bound_is_log_evidence_and_q_is_stationary(particles):
    """Every weight equals p(x) = N(x; μ, 2): J = log p(x), ∇_μ J = (x − μ)/2, ∇_q J = 0."""
    mu, x = 0.3, 1.0
    objective = _posterior(particles, mu=mu, x=x)
    params = objective.parameters()
    log_evidence = -0.5 * math.log(4 * math.pi) - (x - mu) ** 2 / 4
    assert float(objective.expected_cost(params)) == pytest.approx(log_evidence, abs=1e-12)
    exact = torch.tensor([(x - mu) / 2, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(objective.exact_gradient(params), exact, rtol=0, atol=1e-10)


def _bound_by_frullani(objective: LinearGaussianBound, params) -> float:
    """J for d = 1 by an independent route: log S = ∫_0^∞ (e^{−t} − e^{−tS}) dt/t (Frullani)
    with S = (1/K) Σ_k w_k of i.i.d. particles, so E[log S] = ∫ (e^{−t} − φ(t/K)^K) dt/t,
    φ(s) = E[e^{−s w}] a one-dimensional integral (Gauss–Hermite, 200 nodes), the outer one
    by the trapezoid rule in u = log t."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    eps = torch.as_tensor(nodes).reshape(-1, 1, 1)
    z = objective.transform(eps, params)
    log_w = (objective.log_joint(z, params) - objective.log_proposal(z, params))[:, 0]
    u = torch.linspace(-40, 60, 20001, dtype=torch.float64)
    t = u.exp().unsqueeze(1)
    particles = objective.particles()
    phi = (torch.as_tensor(weights / weights.sum()) * torch.exp(-t / particles * log_w.exp())).sum(
        1
    )
    return float(torch.trapezoid(torch.exp(-t[:, 0]) - phi**particles, u))


@pytest.mark.parametrize("particles", [2, 3, 4])
def test_quadrature_agrees_with_an_independent_integral_and_monte_carlo(particles):
    """The product Gauss–Hermite J agrees with the Frullani form to 1e-5 (measured: 4e-6 at
    K = 2, 5e-7 at K = 3, 7e-8 at K = 4) and with 10⁶ draws within Z standard errors."""
    objective = LinearGaussianBound(particles=particles, loc=-0.4, scale=1.3)
    params = objective.parameters()
    exact = float(objective.expected_cost(params))
    assert abs(exact - _bound_by_frullani(objective, params)) < 1e-5
    draws = objective.sample(params, 10**6, torch.Generator().manual_seed(particles))
    costs = objective.cost(draws, params)
    assert abs(float(costs.mean()) - exact) < Z * float(costs.std()) / 1e3


def test_the_quadrature_blocks_are_the_product_grid_in_order():
    """Blocks built from the points' indices concatenate to ``torch.cartesian_prod`` of the
    one-dimensional rule (the last coordinate fastest), weights to the products, summing to 1;
    a block size that does not divide the grid leaves a shorter last block."""
    nodes, weights = (torch.as_tensor(a, dtype=torch.float64) for a in roots_hermitenorm(5))
    weights = weights / weights.sum()
    blocks = list(gauss_hermite_blocks(3, 125, block=40))
    assert [len(b[1]) for b in blocks] == [40, 40, 40, 5]
    grid = torch.cat([b[0] for b in blocks])
    assert torch.equal(grid, torch.cartesian_prod(nodes, nodes, nodes))
    products = torch.cartesian_prod(weights, weights, weights).prod(1)
    assert torch.equal(torch.cat([b[1] for b in blocks]), products)
    assert float(products.sum()) == pytest.approx(1.0, rel=1e-14)


def test_the_block_by_block_gradient_is_autograd_of_the_whole_quadrature(monkeypatch):
    """exact_gradient (each block differentiated and freed in turn) equals autograd through
    expected_cost over every block at once, to float64 rounding, away from the posterior
    (K = 2: 64² nodes, in blocks of 1000, the last one shorter)."""
    from gradbench.objectives import importance_weighted

    monkeypatch.setattr(importance_weighted, "QUADRATURE_BLOCK", 1000)
    objective = LinearGaussianBound(particles=2, loc=-0.4, scale=1.3)
    params = objective.parameters()
    whole = flat_gradient(objective.expected_cost, params)
    torch.testing.assert_close(objective.exact_gradient(params), whole, rtol=1e-12, atol=1e-14)
    assert float(whole.abs().min()) > 1e-3  # a point where every coordinate moves J


def test_enumeration_matches_monte_carlo_and_the_proposal_density():
    objective = DiscreteBound(particles=3, categories=5)
    params = objective.parameters()
    z = objective.sample(params, 10**6, torch.Generator().manual_seed(1))
    costs = objective.cost(z, params)
    exact = float(objective.expected_cost(params))
    assert abs(float(costs.mean()) - exact) < Z * float(costs.std()) / 1e3
    torch.testing.assert_close(
        objective.distribution(params).log_prob(z[:100]),
        objective.log_proposal(z[:100], params).sum(-1),
    )


def test_the_bound_tightens_with_particles():
    """Burda et al. 2016, Theorem 1: J_1 ≤ J_2 ≤ J_4 ≤ log p(x), exactly here."""
    values = [
        float(objective.expected_cost(objective.parameters()))
        for objective in (DiscreteBound(particles=k) for k in (1, 2, 4, 8))
    ]
    assert values == sorted(values)
    linear = [
        float(o.expected_cost(o.parameters()))
        for o in (LinearGaussianBound(particles=k) for k in (1, 2, 4))
    ]
    assert linear == sorted(linear) and linear[-1] < -0.5 * math.log(4 * math.pi) - 0.25


def test_the_reference_falls_back_to_an_estimate_beyond_quadrature_and_enumeration():
    assert LinearGaussianBound(particles=4).gives_reference()
    assert not LinearGaussianBound(particles=5).gives_reference()
    assert not LinearGaussianBound(particles=2, dim=3).gives_reference()
    assert DiscreteBound(particles=10, categories=4).gives_reference()
    assert not DiscreteBound(particles=11, categories=4).gives_reference()
    result = run_pair(LinearGaussianBound(particles=8), DoublyReparameterized(), CONFIG)
    assert result.summary is not None and result.reference_method.startswith("estimated")


# -- the estimators ---------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", [Reparam(), DoublyReparameterized(), Vimco(), Reinforce()])
@pytest.mark.parametrize("particles", [2, 4])
def test_unbiased_estimators_of_the_linear_gaussian_bound(estimator, particles):
    objective = LinearGaussianBound(particles=particles, loc=-0.4, scale=1.3, mu=0.2)
    exact = objective.exact_gradient(objective.parameters())
    assert float(_z(_estimates(estimator, objective, n=40_000), exact).max()) < Z


@pytest.mark.parametrize("estimator", [Vimco(), Reinforce()])
@pytest.mark.parametrize("particles", [2, 5])
def test_unbiased_estimators_of_the_discrete_bound(estimator, particles):
    objective = DiscreteBound(particles=particles)
    exact = objective.exact_gradient(objective.parameters())
    assert float(_z(_estimates(estimator, objective, n=40_000), exact).max()) < Z


def test_stl_is_unbiased_for_the_elbo_and_biased_beyond():
    """Roeder et al. 2017 for K = 1; Tucker et al. 2019, §3, for K > 1."""
    stl = StickingTheLanding()
    elbo = LinearGaussianBound(particles=1, loc=-0.4, scale=1.3)
    assert stl.unbiased_for(elbo)
    assert float(_z(_estimates(stl, elbo), elbo.exact_gradient(elbo.parameters())).max()) < Z
    bound_of_four = LinearGaussianBound(particles=4, loc=-0.4, scale=1.3)
    assert not stl.unbiased_for(bound_of_four)
    exact = bound_of_four.exact_gradient(bound_of_four.parameters())
    assert float(_z(_estimates(stl, bound_of_four), exact).max()) > 10


@pytest.mark.parametrize("particles", [1, 3])
def test_stl_and_dreg_have_zero_variance_in_q_at_the_posterior(particles):
    """At q = p(z | x), ∂_z log w = 0: q's coordinates (loc, scale) are exactly 0, while the
    model's (μ) still vary."""
    objective = _posterior(particles, dim=2)
    for estimator in (StickingTheLanding(), DoublyReparameterized()):
        estimates = _estimates(estimator, objective, n=2000)
        assert float(estimates[:, 2:].abs().max()) < 1e-12
        assert float(estimates[:, :2].var(0).min()) > 0.01
    assert float(_estimates(Reparam(), objective, n=2000)[:, 2:].var(0).min()) > 0.01


def _encoder_variance_and_snr(estimator, particles: int) -> tuple[float, float]:
    """Variance of the q-mean coordinate and its signal-to-noise ratio |E g| / sd(g)."""
    objective = LinearGaussianBound(particles=particles)
    estimates = _estimates(estimator, objective, n=20_000)[:, 1]
    return float(estimates.var()), float(estimates.mean().abs() / estimates.std())


def test_dreg_signal_to_noise_grows_with_particles_while_iwae_decays():
    """Rainforth et al. 2018 and Tucker et al. 2019, Figure 1: the IWAE pathwise gradient of
    the encoder loses signal to noise as K grows (≈ K^{−1/2}), DReG's gains. At K = 1 they are
    the same estimate; at K = 64 DReG's variance is ≥ 100× below IWAE's."""
    iwae = {k: _encoder_variance_and_snr(Reparam(), k) for k in (4, 64)}
    dreg = {k: _encoder_variance_and_snr(DoublyReparameterized(), k) for k in (4, 64)}
    assert iwae[64][1] < iwae[4][1] / 2
    assert dreg[64][1] > 2 * dreg[4][1]
    assert dreg[64][0] < iwae[64][0] / 100


def test_vimco_reduces_the_score_function_variance():
    objective = DiscreteBound(particles=8)
    vimco, plain = (_estimates(e, objective, n=20_000).var(0).sum() for e in (Vimco(), Reinforce()))
    assert float(vimco) < float(plain) / 5


def test_vimco_needs_two_particles():
    assert "K ≥ 2" in Vimco().skip_reason(DiscreteBound(particles=1))
    assert Vimco().skip_reason(DiscreteBound(particles=2)) == ""


def test_leave_one_out_bounds_match_the_definition_and_survive_extreme_weights():
    log_weights = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    particles = log_weights.shape[-1]
    expected = torch.empty_like(log_weights)
    for k in range(particles):
        others = torch.cat([log_weights[:, :k], log_weights[:, k + 1 :]], dim=-1)
        replaced = others.exp().sum(-1) + others.mean(-1).exp()
        expected[:, k] = torch.log(replaced / particles)
    torch.testing.assert_close(leave_one_out_bounds(log_weights), expected)
    extreme = torch.tensor([[800.0, 0.0, -800.0]], dtype=torch.float64)
    values = leave_one_out_bounds(extreme)
    assert torch.isfinite(values).all()
    # without the dominant weight, the others and their geometric mean (−400) remain
    assert float(values[0, 0]) == pytest.approx(math.log((1 + math.exp(-400)) / 3))


def test_bound_is_logmeanexp_over_particles_and_mean_over_terms():
    log_weights = torch.tensor([[[0.0, math.log(3.0)], [math.log(2.0), math.log(2.0)]]])
    assert float(bound(log_weights)) == pytest.approx((math.log(2.0) + math.log(2.0)) / 2)


# -- gradbench check OBJECTIVE ----------------------------------------------------------------


def _checks(objective) -> dict[str, str]:
    from gradbench.extend.objective_conformance import check_objective

    return {check.check: check.outcome for check in check_objective(objective).checks}


def test_the_bounds_pass_their_objective_check():
    for objective in (LinearGaussianBound(particles=2), DiscreteBound(particles=3)):
        outcomes = _checks(objective)
        assert outcomes["claim: importance weights"] == "pass"
        assert all(outcome != "fail" for outcome in outcomes.values()), outcomes
        if objective.name == "iwae-linear-gaussian":
            assert outcomes["claim: noise by inversion"] == "pass"


class _WrongProposal(LinearGaussianBound):
    """Claims the bound but its log_proposal ignores q's scale: q's log_prob disagrees."""

    name = "wrong-proposal"

    def log_proposal(self, z, params):
        return super().log_proposal(z, {**params, "scale": torch.ones_like(params["scale"])})


class _WrongInversion(LinearGaussianBound):
    """Claims noise by inversion but maps u to the uniform's own scale, not Φ⁻¹(u)."""

    name = "wrong-inversion"

    def noise_from_uniforms(self, uniforms, params):
        return 2 * uniforms - 1


def test_the_objective_check_catches_broken_claims():
    """Both are far beyond chance: log_prob differs from Σ log_proposal by rounding nowhere
    near allclose's tolerance, and U(−1, 1) has variance 1/3, a log variance ratio of 1.1
    against its standard error of 0.01 at 20000 draws."""
    assert (
        _checks(_WrongProposal(particles=2, loc=0.3, scale=1.5))["claim: importance weights"]
        == "fail"
    )
    assert _checks(_WrongInversion(particles=2))["claim: noise by inversion"] == "fail"


def test_stl_states_its_claim_on_objectives_it_cannot_run_on():
    """A skipped pair's row still records the claim (``declared_unbiased``)."""
    from gradbench.objectives.gaussian import GaussianSquare

    assert StickingTheLanding().unbiased_for(GaussianSquare())
    result = run_pair(GaussianSquare(), StickingTheLanding(), CONFIG)
    assert result.summary is None and "importance weights" in result.reason
