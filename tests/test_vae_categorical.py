"""The categorical VAE (vae-categorical): its exact ELBO against a brute-force sum, REINFORCE
against its exact gradient, the objective conformance suite, and its draws and relaxed cost.

The two statistical checks are seeded and each fails a correct objective with probability
about ALPHA = 1e-4 (a Bonferroni-corrected Student-t bias test over the coordinates of θ, and
the conformance suite's own tests, about 4e-4 together), so this file about 5e-4.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.distributions import OneHotCategorical, kl_divergence
from torch.func import functional_call

from gradbench.core.objective import Capability, flat_gradient
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.reinforce import Reinforce
from gradbench.extend.conformance import FAIL
from gradbench.extend.objective_conformance import check_objective
from gradbench.objectives.vae import CategoricalVAE

ALPHA = 1e-4


def brute_force_elbo(objective: CategoricalVAE, params) -> torch.Tensor:
    """Σ over every joint code z of the B images, (K^L)^B of them, of q(z) f(z), with torch's
    own ``log_prob`` of the joint distribution, minus torch's KL to the uniform prior."""
    q = objective.distribution(params)  # event [B, L, K]
    batch, latent, categories = q.event_shape
    digits = torch.tensor(list(itertools.product(range(categories), repeat=batch * latent)))
    states = nn.functional.one_hot(digits, categories).to(torch.float64)
    states = states.reshape(-1, batch, latent, categories)
    reconstruction = (q.log_prob(states).exp() * objective.cost(states, params)).sum()
    logits = objective.categorical_logits(params)
    uniform = OneHotCategorical(logits=torch.zeros_like(logits))
    kl = kl_divergence(OneHotCategorical(logits=logits), uniform).sum(-1)  # [B]
    return reconstruction - kl.mean()


def test_exact_elbo_matches_a_brute_force_sum():
    objective = CategoricalVAE(batch=2)  # 256² = 65 536 joint codes
    params = objective.parameters()
    torch.testing.assert_close(
        objective.expected_cost(params), brute_force_elbo(objective, params), rtol=1e-10, atol=0
    )
    torch.testing.assert_close(
        objective.exact_gradient(params),
        flat_gradient(lambda theta: brute_force_elbo(objective, theta), params),
        rtol=1e-10,
        atol=1e-10,
    )


def tempered(objective: CategoricalVAE) -> dict[str, torch.Tensor]:
    """The shipped θ with the encoder's output layer, hence every logit, divided by 4."""
    return {
        name: value / 4 if name.startswith("output.") else value
        for name, value in objective.parameters().items()
    }


def test_reinforce_agrees_with_the_exact_gradient():
    """run_pair adds the exact ∇ of the analytic term (−KL) to every REINFORCE estimate of the
    reconstruction gradient and tests the mean of 20 000 against the exact ELBO gradient: the
    Bonferroni-corrected Student-t p-value over the coordinates falls below ALPHA for a correct
    pair with probability about ALPHA.

    It runs at a tempered θ: the shipped posteriors give some categories probabilities of 1e-4
    and less, drawn a handful of times in 10⁴ estimates, and the skewed coordinate means that
    makes over-reject at the Bonferroni threshold (p < 1e-3 for 3 of 6 seeds at n = 10⁴).
    Tempered, every category has probability ≥ 1.4e-3 and 8 seeds gave z_max ≤ 3.8, p ≥ 0.47.
    The sampler, log_prob, cost and exact ELBO under test are the same functions of θ."""
    objective = CategoricalVAE(batch=4)
    theta = tempered(objective)
    config = RunConfig(n_samples=20_000, seed=5, dtype=torch.float64, timing_repeats=0)
    result = run_pair(objective, Reinforce(), config, at=theta)
    assert result.status == "ok", result.reason
    assert result.reference_method == "exact (enumeration)"
    summary = result.summary
    torch.testing.assert_close(
        summary.reference, objective.exact_gradient(theta).to(summary.reference)
    )
    assert summary.bias_p >= ALPHA, f"bias z_max {summary.bias_z_max:.2f}, p = {summary.bias_p:.2g}"


def test_objective_conformance():
    """The suite's shapes, determinism, claims (common noise, categorical logits, relaxed cost),
    sampling (mean of the draws = q's mean, mean cost + KL term = the exact ELBO) and reference
    (leave-one-out REINFORCE against the exact gradient) checks, at the shipped θ; each
    statistical one fails a correct objective with probability about 1e-4."""
    report = check_objective(CategoricalVAE(batch=4), n_samples=20_000, seed=1)
    failures = [f"{c.check}: {c.evidence}" for c in report.checks if c.outcome == FAIL]
    assert report.passed, failures
    checked = {c.check for c in report.checks}
    claims = {f"claim: {c.value}" for c in CategoricalVAE.offers}
    assert claims | {"draws follow q_θ", "expected_cost", "reference"} <= checked


def test_draws_are_one_hot_codes_by_inversion():
    objective = CategoricalVAE(batch=3)
    params = objective.parameters()
    n, shape = 64, (3, CategoricalVAE.latent, CategoricalVAE.categories)
    logits = objective.categorical_logits(params)
    assert logits.shape == shape
    assert objective.distribution(params).event_shape == shape
    batched = {k: v.expand(n, *v.shape) for k, v in params.items()}
    assert objective.categorical_logits(batched).shape == (n, *shape)

    noise = objective.noise(n, params, torch.Generator().manual_seed(0))
    assert noise.shape == (n, *shape[:-1])
    x = objective.transform(noise, params)
    assert x.shape == (n, *shape) and x.dtype == torch.float64
    assert bool(((x == 0) | (x == 1)).all()) and bool((x.sum(-1) == 1).all())
    # Inversion: the drawn category i is the first whose cumulative probability exceeds ε.
    cumulative = torch.softmax(logits, dim=-1).cumsum(-1)
    index = x.argmax(-1, keepdim=True)
    upper = cumulative.expand_as(x).gather(-1, index).squeeze(-1)
    lower = (cumulative - torch.softmax(logits, dim=-1)).expand_as(x).gather(-1, index).squeeze(-1)
    assert bool(((lower <= noise) & (noise <= upper)).all())
    torch.testing.assert_close(objective.transform(noise, batched), x)


def test_relaxed_cost_is_the_decoder_likelihood_at_softmax_points():
    objective = CategoricalVAE(batch=3)
    params = objective.parameters()
    assert Capability.RELAXED_COST in objective.capabilities()
    generator = torch.Generator().manual_seed(1)
    shape = (16, 3, CategoricalVAE.latent, CategoricalVAE.categories)
    y = torch.softmax(torch.randn(shape, generator=generator, dtype=torch.float64), dim=-1)
    y.requires_grad_()
    cost = objective.cost(y, params)
    assert cost.shape == (16,) and bool(cost.isfinite().all())
    (grad,) = torch.autograd.grad(cost.sum(), y)
    assert bool(grad.isfinite().all()) and bool((grad != 0).any())

    # The decoder reads each code flattened variable by variable, [*, B, L·K].
    network = objective.networks
    logits = functional_call(network.decoder, network.decoder_weights, (y.flatten(-2),))
    images = objective.images(y)
    pixels = -nn.functional.binary_cross_entropy_with_logits(
        logits, images.expand_as(logits), reduction="none"
    )
    torch.testing.assert_close(cost, pixels.sum(-1).mean(-1))
