"""The K-sample bounds of the digits VAEs (:mod:`gradbench.objectives.vae_bounds`): their shapes
and densities, the ELBO at K = 1, the growth with K (Burda et al. 2016, Theorem 1), the IWAE
gradients, and the objective suite.

Every statistical check is seeded and is a two-sided z-test at level ALPHA = 1e-4 (Bonferroni
over the coordinates of a gradient): a correct implementation fails each with probability about
1e-4, and the four here (two at K = 1, two in the gradient test) about 4e-4 together; each run
of the objective suite tests at the same level (at most about 4e-4 a run, its docstring says).
The orderings in K fail only when an observed gap falls short of Z standard errors: the gaps
these models have are 13 to 33 standard errors at the sizes used, so a failure has probability
below Φ(3.9 − 13) < 1e-18.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import norm
from torch import Tensor
from torch.distributions import Normal

from gradbench.core.estimator import Estimator
from gradbench.engine.reference import ReferencePlan
from gradbench.estimators.augment_reinforce_merge import DisARM
from gradbench.estimators.importance_weighted import DoublyReparameterized
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.extend.conformance import FAIL
from gradbench.extend.objective_conformance import check_objective
from gradbench.objectives.importance_weighted import LOG_WEIGHT_TEMPORARIES
from gradbench.objectives.vae import BernoulliVAE, GaussianVAE
from gradbench.objectives.vae_bounds import BernoulliVAEBound, GaussianVAEBound

ALPHA = 1e-4
Z = norm.isf(ALPHA / 2)
#: Each bound with the ELBO objective of the same model and encoder.
PAIRS = [(GaussianVAEBound, GaussianVAE), (BernoulliVAEBound, BernoulliVAE)]
IDS = ["gaussian", "bernoulli"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _costs(objective, n: int, seed: int) -> Tensor:
    params = objective.parameters()
    with torch.no_grad():
        return objective.cost(objective.sample(params, n, _generator(seed)), params)


def _mean_and_error(values: Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))


def _log_prior(bound, z: Tensor) -> Tensor:
    """log p(z) of each particle from torch's own densities."""
    if isinstance(bound, GaussianVAEBound):
        return Normal(0.0, 1.0).log_prob(z).sum(-1)
    return torch.distributions.Bernoulli(probs=torch.full_like(z, 0.5)).log_prob(z).sum(-1)


@pytest.mark.parametrize(("bound_class", "elbo_class"), PAIRS, ids=IDS)
def test_shapes_and_densities(bound_class, elbo_class):
    """Draws ``[n, B, K, L]``, log-densities ``[n, B, K]``, the cost the mean of the per-image
    bounds; log p(x_b | z_bk) is the ELBO objective's likelihood of particle k (the decoder
    pairs each particle with its own image), and the distribution's log_prob is the sum of the
    particles' log q, for θ alone and batched over the draws."""
    n, batch, particles = 6, 3, 5
    bound, elbo = bound_class(batch=batch, particles=particles), elbo_class(batch=batch)
    params = bound.parameters()
    z = bound.sample(params, n, _generator(0))
    assert z.shape == (n, batch, particles, bound.latent)
    log_joint, log_proposal = bound.log_joint(z, params), bound.log_proposal(z, params)
    assert log_joint.shape == log_proposal.shape == (n, batch, particles)
    for k in range(particles):
        torch.testing.assert_close(
            log_joint[..., k] - _log_prior(bound, z[..., k, :]),
            elbo.cost_terms(z[..., k, :], params),
        )
    terms = torch.logsumexp(log_joint - log_proposal, -1) - math.log(particles)
    torch.testing.assert_close(bound.cost_terms(z, params), terms)
    torch.testing.assert_close(bound.cost(z, params), terms.mean(-1))
    batched = {k: v.expand(n, *v.shape) for k, v in params.items()}
    for theta in (params, batched):
        torch.testing.assert_close(
            bound.distribution(theta).log_prob(z), bound.log_proposal(z, theta).sum((-2, -1))
        )


def test_the_binary_bound_offers_no_bernoulli_structure():
    """Its cost depends on θ through log q, which the Bernoulli estimators (DisARM) would drop."""
    assert "Bernoulli logit" in DisARM().skip_reason(BernoulliVAEBound())


@pytest.mark.parametrize(("bound_class", "elbo_class"), PAIRS, ids=IDS)
def test_chunk_sizing_counts_every_particle(bound_class, elbo_class):
    """At K = 1 an evaluation holds what the ELBO's does and its B log-weights' temporaries;
    each particle adds the same amount."""
    elements = {
        k: bound_class(batch=5, particles=k).elements_per_evaluation(elbo_class().parameters())
        for k in (1, 2, 16)
    }
    per_particle = elements[2] - elements[1]
    elbo = elbo_class(batch=5)
    log_weights = LOG_WEIGHT_TEMPORARIES * 5
    assert elements[1] == elbo.elements_per_evaluation(elbo.parameters()) + log_weights
    assert per_particle > 0 and elements[16] == elements[1] + 15 * per_particle


def test_one_binary_particle_is_the_exact_elbo():
    """At K = 1, E[bound] = E_q[log p(x | z) + log p(z) − log q(z | x)] = the ELBO, which
    vae-bernoulli sums exactly over the latent states (its expected_cost)."""
    batch = 8
    elbo = BernoulliVAE(batch=batch)
    exact = float(elbo.expected_cost(elbo.parameters()))
    mean, error = _mean_and_error(_costs(BernoulliVAEBound(batch=batch, particles=1), 20_000, 1))
    assert abs(mean - exact) < Z * error, f"{mean} vs {exact} ± {error}"


def test_one_gaussian_particle_is_the_elbo():
    """At K = 1 the bound of a draw differs from vae-gaussian's cost + analytic term (−KL) at
    the same noise by log p(z) − log q(z | x) + KL(q ‖ p), of mean zero: a paired z-test (the
    common noise removes the reconstruction term's spread from the difference)."""
    n, batch = 20_000, 8
    bound, elbo = GaussianVAEBound(batch=batch, particles=1), GaussianVAE(batch=batch)
    params = bound.parameters()
    noise = bound.noise(n, params, _generator(2))  # [n, B, 1, L]
    with torch.no_grad():
        bounds = bound.cost(bound.transform(noise, params), params)
        elbos = elbo.cost(elbo.transform(noise[..., 0, :], params), params)
        elbos = elbos + elbo.analytic_term(params)
    mean, error = _mean_and_error(bounds - elbos)
    assert error > 0 and abs(mean) < Z * error, f"{mean} ± {error}"


@pytest.mark.parametrize("bound_class", [GaussianVAEBound, BernoulliVAEBound], ids=IDS)
def test_the_bound_grows_with_the_particles(bound_class):
    """Means at K = 1, 4, 16 on independent draws, each gap more than Z standard errors."""
    summaries = [
        _mean_and_error(_costs(bound_class(particles=k), 2000, seed))
        for seed, k in enumerate((1, 4, 16))
    ]
    for (lower, lower_error), (higher, higher_error) in itertools.pairwise(summaries):
        gap_error = math.hypot(lower_error, higher_error)
        assert higher - lower > Z * gap_error, f"{summaries}"


def _estimates(estimator: Estimator, objective, n: int, seed: int) -> Tensor:
    return estimator.estimate(objective, objective.parameters(), n, _generator(seed))


def _assert_same_mean(first: Tensor, second: Tensor) -> None:
    """Bonferroni z-test over the coordinates that vary (the weights of pixels that are 0 in
    every image have an exactly zero gradient in every estimate)."""
    error = (first.var(0) / first.shape[0] + second.var(0) / second.shape[0]).sqrt()
    varies = error > 0
    z = (first.mean(0) - second.mean(0))[varies] / error[varies]
    limit = norm.isf(ALPHA / (2 * int(varies.sum())))
    assert float(z.abs().max()) < limit, f"z_max = {float(z.abs().max()):.2f} ≥ {limit:.2f}"


def test_pathwise_and_score_function_gradients_agree():
    """The IWAE pathwise gradient (reparam) against the score-function one (reinforce, which
    reads q through the distribution's log_prob) and the doubly reparameterized one (dreg,
    which reads the model through log_joint alone): all three are unbiased for ∇J."""
    bound = GaussianVAEBound(batch=2, particles=4)
    pathwise = _estimates(Reparam(), bound, 5000, 3)
    _assert_same_mean(pathwise, _estimates(Reinforce(), bound, 10_000, 4))
    _assert_same_mean(pathwise, _estimates(DoublyReparameterized(), bound, 5000, 5))


@pytest.mark.parametrize("bound_class", [GaussianVAEBound, BernoulliVAEBound], ids=IDS)
def test_objective_conformance(bound_class):
    """The suite's shapes, determinism, claims, sampling and estimated-reference checks (an
    unbiased estimator other than the reference's maker shows no bias, the reference's own
    error included), at two images. The reference has a fixed size: sized to the run, the
    binary latent's would grow to millions of estimates, its pilot seldom seeing the bits that
    q makes almost certain flip."""
    objective = bound_class(batch=2)
    plan = ReferencePlan(samples=2**15)
    report = check_objective(objective, n_samples=4000, seed=1, reference=plan)
    assert report.passed, [f"{c.check}: {c.evidence}" for c in report.checks if c.outcome == FAIL]
    checked = {c.check for c in report.checks}
    claims = {f"claim: {c.value}" for c in objective.capabilities()}
    assert claims | {"draws follow q_θ", "reference"} <= checked
