"""Bayesian logistic regression: the ELBO of a mean-field Gaussian posterior on real data.

Data: the Wisconsin breast-cancer set (:func:`~gradbench.objectives.datasets.breast_cancer`),
N = 569 tumours, D = 31 weights (30 standardised features and an intercept), labels y = ±1.
Model: w ~ N(0, τ² I), p(y_i | w) = sigmoid(y_i x_iᵀ w). Posterior approximation:
q_θ(w) = N(μ, diag σ²), θ = (``mu`` ``[31]``, ``sigma`` ``[31]``), P = 62. The objective is
the ELBO

    J(θ) = E_{q_θ}[ Σ_i log sigmoid(y_i x_iᵀ w) ] − KL(q_θ ‖ N(0, τ² I)),

the case study of Mohamed et al. 2020, JMLR, §8. The cost is the log-likelihood (free of θ); the
KL is the analytic term, whose exact gradient the engine adds to every estimate.

**Exact reference.** x_iᵀw ~ N(m_i, s_i²) with m_i = x_iᵀμ and s_i² = Σ_j x_ij² σ_j², so the
expected log-likelihood is a sum of one-dimensional Gaussian integrals, computed with the
composite Gauss–Legendre rule of :func:`~gradbench.analysis.quadrature.normal_rule` (3072 nodes on
±12 standard deviations). log sigmoid is analytic within π of the real axis, so the rule is
accurate to rounding for s_i up to ~100 (checked in the tests by halving the panels).

**The point θ.** Starting from the prior (μ = 0, σ = τ), ``warmup`` steps of Adam (learning
rate 0.05, on μ and log σ) ascend the ELBO, its integrals taken with a 32-node Gauss–Hermite
rule (cheap; only the point depends on it): deterministic, no random numbers, so the point is
the same on every machine up to rounding. 0 steps leaves θ at the prior.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch import Tensor
from torch.optim.adam import adam

from gradbench.analysis.quadrature import Rule, hermite_rule, normal_rule
from gradbench.core.device_copies import on_device_of
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least, positive
from gradbench.objectives.datasets import breast_cancer
from gradbench.objectives.gaussian import DiagonalGaussian

WARMUP_LEARNING_RATE = 0.05
WARMUP_NODES = 32


class BayesianLogisticRegression(DiagonalGaussian):
    """ELBO of Bayesian logistic regression on breast cancer; parameters ``mu``, ``sigma``."""

    maximize = True  # the ELBO

    name = "bayes-logreg"
    description = "ELBO of Bayesian logistic regression, breast cancer data, mean-field Gaussian"
    reference_method = "exact (quadrature)"
    settings = (
        Setting("prior_scale", float, 1.0, "prior standard deviation τ of every weight", positive),
        Setting("warmup", int, 50, "Adam steps on the exact ELBO from the prior", at_least(0)),
    )
    default_samples = 2000

    def parameters(self) -> Params:
        mu, sigma = _warm_start(self.setting("prior_scale"), int(self.setting("warmup")))
        return {"mu": mu.clone(), "sigma": sigma.clone()}

    def cost(self, x: Tensor, params: Params) -> Tensor:
        """Σ_i log sigmoid(y_i x_iᵀ w) for weights ``x`` ``[*S, 31]`` → ``[*S]``."""
        features, labels = _data(x)
        return torch.nn.functional.logsigmoid((x @ features.T) * labels).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        return expected_log_likelihood(params["mu"], params["sigma"]) + self.analytic_term(params)

    def elements_per_evaluation(self, params: Params) -> int:
        """The weights and θ, and the margins of the 569 rows with their log-sigmoids."""
        rows = breast_cancer()[0].shape[0]
        return super().elements_per_evaluation(params) + 2 * rows

    def analytic_term(self, params: Params) -> Tensor:
        """−KL(N(μ, σ²) ‖ N(0, τ²)) = Σ_j log(σ_j/τ) − (σ_j² + μ_j²)/(2τ²) + ½."""
        tau = self.setting("prior_scale")
        mu, sigma = params["mu"], params["sigma"]
        return (torch.log(sigma / tau) - (sigma**2 + mu**2) / (2 * tau**2) + 0.5).sum()


def expected_log_likelihood(mu: Tensor, sigma: Tensor, rule: Rule | None = None) -> Tensor:
    """E_{w ~ N(μ, σ²)} Σ_i log sigmoid(y_i x_iᵀ w) by quadrature; ``mu``, ``sigma`` ``[31]``;
    ``rule`` for ε ~ N(0, 1), by default the accurate :func:`normal_rule`."""
    features, labels = _data(mu)
    mean = features @ mu  # [N]
    spread = torch.sqrt((features**2) @ sigma**2)  # [N]
    rule = rule or normal_rule()
    nodes, weights = rule.nodes.to(mu), rule.weights.to(mu)
    margins = labels.unsqueeze(1) * (mean.unsqueeze(1) + spread.unsqueeze(1) * nodes)  # [N, Q]
    return (torch.nn.functional.logsigmoid(margins) @ weights).sum()


def _data(like: Tensor) -> tuple[Tensor, Tensor]:
    """Features ``[569, 31]`` and labels ``[569]`` on ``like``'s device and dtype."""
    features, labels = breast_cancer()
    return on_device_of(features, like), on_device_of(labels, like)


@cache
def _warm_start(prior_scale: float, steps: int) -> tuple[Tensor, Tensor]:
    """(μ, σ) after ``steps`` of Adam on the exact ELBO from the prior, float64 ``[31]`` each."""
    dim = breast_cancer()[0].shape[1]
    mu = torch.zeros(dim, dtype=torch.float64)
    log_sigma = torch.full((dim,), math.log(prior_scale), dtype=torch.float64)
    objective = BayesianLogisticRegression(prior_scale=prior_scale, warmup=0)
    rule = hermite_rule(WARMUP_NODES)
    moments = [torch.zeros(dim, dtype=torch.float64) for _ in range(4)]
    counts = [torch.tensor(0.0), torch.tensor(0.0)]
    for _ in range(steps):
        leaves = [mu.requires_grad_(), log_sigma.requires_grad_()]
        params = {"mu": mu, "sigma": log_sigma.exp()}
        elbo = expected_log_likelihood(mu, params["sigma"], rule) + objective.analytic_term(params)
        grads = torch.autograd.grad(-elbo, leaves)
        with torch.no_grad():
            mu, log_sigma = mu.detach(), log_sigma.detach()
            # torch's own Adam update, in its functional form: torch.optim.Adam's object
            # would import torch._dynamo (a second of start-up) for the same numbers.
            adam(
                [mu, log_sigma], list(grads), moments[:2], moments[2:], [], counts,
                foreach=False, capturable=False, differentiable=False, fused=None,
                grad_scale=None, found_inf=None, has_complex=False, amsgrad=False, beta1=0.9,
                beta2=0.999, lr=WARMUP_LEARNING_RATE, weight_decay=0.0, eps=1e-8, maximize=False,
            )  # fmt: skip
    return mu, log_sigma.exp()
