"""Objectives from real models: their reference gradients and the estimators on them.

Each reference is checked two ways: against an independent computation of the same number
(a finer quadrature, a brute-force sum over latent states), and against an independent estimator
run through the engine, whose Bonferroni bias p-value (``summary.bias_p``, which already
includes the reference's own standard error where it is estimated) must not fall below
ALPHA = 1e-4: each such check fails falsely with probability at most 1e-4, and this file has
six, so at most 6e-4 together.
"""

from __future__ import annotations

import gc
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradbench.analysis.quadrature import Rule
from gradbench.core import device_copies as constants
from gradbench.core.device_copies import on_device_of
from gradbench.core.objective import flat_gradient
from gradbench.engine.reference import ReferencePlan
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.augment_reinforce_merge import DisARM
from gradbench.estimators.finite_difference import CentralDifference
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import LeaveOneOut
from gradbench.objectives.logistic_regression import (
    BayesianLogisticRegression,
    expected_log_likelihood,
)
from gradbench.objectives.networks import batched_call, module_parameters
from gradbench.objectives.vae import BernoulliVAE, GaussianVAE

ALPHA = 1e-4


def assert_unbiased(
    objective, estimator, n: int, seed: int, dtype=torch.float32, reference=None
) -> None:
    plan = reference or ReferencePlan()
    config = RunConfig(n_samples=n, seed=seed, dtype=dtype, timing_repeats=0, reference=plan)
    result = run_pair(objective, estimator, config)
    assert result.status == "ok", result.reason
    summary = result.summary
    assert summary.bias_p >= ALPHA, (
        f"{estimator.name} on {objective.name}: bias z_max {summary.bias_z_max:.2f},"
        f" p = {summary.bias_p:.2g}"
    )


# --- networks -------------------------------------------------------------------------------


def test_batched_call_evaluates_each_copy_of_the_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    weights = module_parameters(net)
    batch = {k: v + 0.1 * torch.randn(2, 3, *v.shape, dtype=v.dtype) for k, v in weights.items()}
    inputs = torch.randn(6, 5, dtype=torch.float64)
    output = batched_call(net, batch, inputs)
    assert output.shape == (2, 3, 6, 3)
    for i, j in itertools.product(range(2), range(3)):
        one = {k: v[i, j] for k, v in batch.items()}
        torch.testing.assert_close(output[i, j], torch.func.functional_call(net, one, (inputs,)))
    torch.testing.assert_close(batched_call(net, weights, inputs), net(inputs))


def test_constants_are_copied_once_per_device_and_dtype():
    constant = torch.linspace(0, 1, 7, dtype=torch.float64)
    like32 = torch.zeros((), dtype=torch.float32)
    assert on_device_of(constant, constant) is constant
    first = on_device_of(constant, like32)
    assert first.dtype == torch.float32 and torch.equal(first, constant.float())
    assert on_device_of(constant, like32) is first
    key = id(constant)
    del constant
    gc.collect()
    assert key not in constants._copies


# --- bayes-logreg ---------------------------------------------------------------------------


def finer_normal_rule() -> Rule:
    """Composite Gauss–Legendre on ±14 standard deviations, panels of 1/64, 10 nodes each:
    a rule independent of, and finer than, the objective's."""
    unit_nodes, unit_weights = np.polynomial.legendre.leggauss(10)
    edges = np.linspace(-14, 14, 28 * 64 + 1)
    half, centre = np.diff(edges) / 2, (edges[1:] + edges[:-1]) / 2
    nodes = torch.from_numpy((centre[:, None] + half[:, None] * unit_nodes).ravel())
    weights = torch.from_numpy((half[:, None] * unit_weights).ravel())
    return Rule(nodes, weights * torch.exp(-(nodes**2) / 2) / math.sqrt(2 * math.pi))


@pytest.mark.parametrize("warmup", [0, 50])
def test_logreg_quadrature_agrees_with_a_finer_rule(warmup):
    objective = BayesianLogisticRegression(warmup=warmup)
    params = objective.parameters()
    fine = finer_normal_rule()

    def finer(theta):
        ell = expected_log_likelihood(theta["mu"], theta["sigma"], fine)
        return ell + objective.analytic_term(theta)

    torch.testing.assert_close(objective.expected_cost(params), finer(params), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        objective.exact_gradient(params), flat_gradient(finer, params), rtol=1e-10, atol=1e-10
    )


def test_logreg_kl_term_is_the_gaussian_kl():
    objective = BayesianLogisticRegression(prior_scale=2.0, warmup=5)
    params = objective.parameters()
    q = objective.distribution(params)
    prior = torch.distributions.Independent(
        torch.distributions.Normal(torch.zeros(31, dtype=torch.float64), 2.0), 1
    )
    torch.testing.assert_close(
        objective.analytic_term(params), -torch.distributions.kl_divergence(q, prior)
    )


def test_logreg_reference_agrees_with_the_pathwise_estimator():
    assert_unbiased(BayesianLogisticRegression(), Reparam(), n=20_000, seed=1)


# --- vae-bernoulli --------------------------------------------------------------------------


def brute_force_elbo(objective: BernoulliVAE, params) -> torch.Tensor:
    """Σ over every joint latent state z ∈ {0, 1}^{B×L} of q(z) f(z), with torch's own
    ``log_prob`` of the joint distribution, plus the analytic KL term."""
    q = objective.distribution(params)  # event [B, L]
    batch, latent = q.event_shape
    bits = torch.arange(2 ** (batch * latent)).unsqueeze(1) >> torch.arange(batch * latent)
    states = (bits & 1).to(torch.float64).reshape(-1, batch, latent)
    return (q.log_prob(states).exp() * objective.cost(states, params)).sum() + (
        objective.analytic_term(params)
    )


def test_vae_bernoulli_enumeration_matches_a_brute_force_sum():
    objective = BernoulliVAE(batch=2)  # 2^16 joint states
    params = objective.parameters()
    torch.testing.assert_close(
        objective.expected_cost(params), brute_force_elbo(objective, params), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        objective.exact_gradient(params),
        flat_gradient(lambda theta: brute_force_elbo(objective, theta), params),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("estimator", [Reinforce(), DisARM()], ids=["reinforce", "disarm"])
def test_vae_bernoulli_exact_gradient_agrees_with_unbiased_estimators(estimator):
    assert_unbiased(BernoulliVAE(batch=8), estimator, n=10_000, seed=2)


def test_finite_differences_skip_network_weights_unless_asked():
    objective = BernoulliVAE(batch=1)
    reason = CentralDifference().skip_reason(objective)
    assert "max_evals" in reason and "2P = " in reason
    assert CentralDifference(max_evals=10**6).skip_reason(objective) == ""


# --- vae-gaussian ---------------------------------------------------------------------------


def test_vae_gaussian_estimated_reference_agrees_with_the_score_function():
    """The reference is a pathwise mean; leave-one-out REINFORCE never differentiates the
    decoder, so it is an independent check of that mean (and of its standard error)."""
    objective = GaussianVAE(batch=4)
    assert_unbiased(objective, LeaveOneOut(K=4), 10_000, 3, reference=ReferencePlan(samples=8192))


def test_vae_gaussian_reference_has_its_standard_error_in_the_bias_test():
    plan = ReferencePlan(samples=8192)
    config = RunConfig(
        n_samples=4000, seed=4, dtype=torch.float64, timing_repeats=0, reference=plan
    )
    result = run_pair(GaussianVAE(batch=4), Reparam(), config)
    assert result.status == "ok", result.reason
    assert result.reference_estimator == "rqmc-reparam"
    assert result.reference_samples >= 8192 and result.reference_samples % 64 == 0
    assert result.bias_informative  # rqmc-reparam made the reference, so reparam is tested
    summary = result.summary
    # Weights of pixels that are 0 in every image have an exactly zero gradient and error.
    assert summary.reference_se is not None
    assert bool((summary.reference_se[summary.reference != 0] > 0).all())
    run_se = (summary.coordinate_variance / 4000).sqrt()
    torch.testing.assert_close(summary.bias_se, torch.sqrt(run_se**2 + summary.reference_se**2))


def test_the_bundled_data_are_scikit_learns():
    """Read without importing scikit-learn, the files equal what its loaders return."""
    from sklearn.datasets import load_breast_cancer, load_digits

    from gradbench.objectives.datasets import binary_digits, breast_cancer

    features, labels = breast_cancer()
    cancer = load_breast_cancer()
    raw = torch.from_numpy(cancer.data)
    standardised = (raw - raw.mean(0)) / raw.std(0, correction=0)
    torch.testing.assert_close(features[:, :-1], standardised, rtol=0, atol=0)
    assert torch.equal(labels, torch.from_numpy(cancer.target).double() * 2 - 1)
    digits = torch.from_numpy(load_digits().data)
    assert torch.equal(binary_digits(), (digits >= 8).double())
