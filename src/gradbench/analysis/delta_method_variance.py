"""Exact per-sample variances of the delta-method control variate estimators, by quadrature.

On a separable Gaussian objective, f(x) = Σ_d c(x_d) with x_d = μ_d + σ_d ε_d independently,
the Hessian at the mean is diagonal and the second-order Taylor expansion at μ̂ = μ is separable
too, h(x) = Σ_d h_d(x_d) with h_d(x) = c(μ_d) + c'(μ_d)(x − μ_d) + ½ c''(μ_d)(x − μ_d)², so
∇_θ E[h] = (c'(μ_d), c''(μ_d) σ_d). Coordinate j of an estimate with coefficient b = β_j is,
with x = μ_j + σ_j ε:

* pathwise (``delta-pathwise``): g_μ = c'(x) − b c''(μ_j) σ_j ε and
  g_σ = c'(x) ε − b (ε (c'(μ_j) + c''(μ_j) σ_j ε) − c''(μ_j) σ_j), functions of one draw;
* score function (``delta-method``): g = (f − b h)(x)·s + b ∇_j E[h] with s_μ = ε/σ_j,
  s_σ = (ε² − 1)/σ_j. With the residual r_d = c − h_d and a = 1 − b, c − b h_d = r_d + a h_d,
  and the part U_j = Σ_{d≠j} (r_d + a h_d)(x_d) is independent of ε with
  E U_j = Σ_{d≠j} E r_d + a E h_d and Var U_j = Σ_{d≠j} Var r_d + 2a Cov(r_d, h_d) + a² Var h_d,
  so Var g = Var[((r_j + a h_j)(x) + E U_j)·s] + Var(U_j)·E[s²], as for the plain score
  function in :mod:`gradbench.analysis.exact_variance` (its b = 0 case). The residual form
  keeps these moments from cancelling where f is nearly h and b nearly 1.

The integrals use :func:`gradbench.analysis.quadrature.normal_rule` (composite Gauss–Legendre,
exact up to rounding for polynomial costs, about 1e-10 for cos(kx) with kσ ≤ 45); c' and c''
come from autograd of c (not ``torch.func``, whose first use imports ``torch._dynamo``).
Estimators: Paisley, Blei & Jordan 2012; Miller et al. 2017; Mohamed et al. 2020, JMLR, §7.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradbench.analysis.exact_variance import SeparableGaussian
from gradbench.analysis.quadrature import normal_rule


@dataclass(frozen=True)
class _Expansion:
    """c and its expansion h_d at the quadrature points x = μ_d + σ_d ε, ``[D, Q]`` each, with
    c'(x) there, and c'(μ_d), c''(μ_d) ``[D]``."""

    cost: Tensor
    taylor: Tensor
    cost_slope: Tensor
    slope: Tensor
    curvature: Tensor

    @classmethod
    def of(cls, gaussian: SeparableGaussian, eps: Tensor) -> _Expansion:
        mu = gaussian.mu.clone().requires_grad_()
        points = gaussian.points(eps).requires_grad_()
        with torch.enable_grad():  # c is elementwise: the gradient of Σ c is c' at each point
            value = gaussian.cost(mu)
            slope = gradient_of_sum(value, mu, create_graph=True)
            curvature = gradient_of_sum(slope, mu)
            cost = gaussian.cost(points)
            cost_slope = gradient_of_sum(cost, points)
        offset = gaussian.sigma.unsqueeze(-1) * eps  # x − μ_d [D, Q]
        value, slope = value.detach().unsqueeze(-1), slope.detach()
        taylor = value + slope.unsqueeze(-1) * offset + 0.5 * curvature.unsqueeze(-1) * offset**2
        return cls(cost.detach(), taylor, cost_slope, slope, curvature)


def gradient_of_sum(values: Tensor, x: Tensor, create_graph: bool = False) -> Tensor:
    """∂(Σ values)/∂x by autograd, zeros where ``values`` do not depend on x (a constant
    cost, or the slope of a linear one); the graph is kept for further derivatives."""
    if not values.requires_grad:
        return torch.zeros_like(x)
    (gradient,) = torch.autograd.grad(
        values.sum(), x, create_graph=create_graph, retain_graph=True, materialize_grads=True
    )
    return gradient


def _coefficients(gaussian: SeparableGaussian, beta: Tensor) -> tuple[Tensor, Tensor]:
    """β ``[P]`` in the layout's order → its μ and σ parts, ``[D, 1]`` each, float64 CPU."""
    parts = gaussian.layout.unflatten(beta.detach().to("cpu", torch.float64))
    return parts["mu"].reshape(-1, 1), parts["sigma"].reshape(-1, 1)


def pathwise_delta_variance(gaussian: SeparableGaussian, beta: Tensor) -> Tensor:
    """Var of g = ∇_θ f(μ + σε) − β ⊙ (∇_θ h(μ + σε) − ∇_θ E[h]) per coordinate, ``[P]``."""
    rule = normal_rule()
    eps = rule.nodes
    terms = _Expansion.of(gaussian, eps)
    b_mu, b_sigma = _coefficients(gaussian, beta)
    sigma, slope = gaussian.sigma.unsqueeze(-1), terms.slope.unsqueeze(-1)
    curvature = terms.curvature.unsqueeze(-1)
    d_mu = terms.cost_slope - b_mu * curvature * sigma * eps
    taylor_sigma = eps * (slope + curvature * sigma * eps) - curvature * sigma
    d_sigma = terms.cost_slope * eps - b_sigma * taylor_sigma
    return gaussian.per_coordinate(rule.variance(d_mu), rule.variance(d_sigma))


def score_function_delta_variance(gaussian: SeparableGaussian, beta: Tensor) -> Tensor:
    """Var of g = f(x) s(x) − β ⊙ (h(x) s(x) − ∇_θ E[h]) per coordinate, ``[P]``."""
    rule = normal_rule()
    terms = _Expansion.of(gaussian, rule.nodes)
    residual = terms.cost - terms.taylor
    residual_mean, taylor_mean = rule.mean(residual), rule.mean(terms.taylor)
    residual_centred = residual - residual_mean.unsqueeze(-1)
    taylor_centred = terms.taylor - taylor_mean.unsqueeze(-1)
    residual_variance = rule.mean(residual_centred**2)
    taylor_variance = rule.mean(taylor_centred**2)
    covariance = rule.mean(residual_centred * taylor_centred)

    def others(moment: Tensor) -> Tensor:  # Σ_{d≠j} of a per-coordinate moment [D] → [D, 1]
        return (moment.sum() - moment).unsqueeze(-1)

    def part(score: Tensor, b: Tensor) -> Tensor:  # score [D, Q], b [D, 1]
        a = 1 - b
        rest_mean = others(residual_mean) + a * others(taylor_mean)
        rest_variance = (
            others(residual_variance) + 2 * a * others(covariance) + a**2 * others(taylor_variance)
        )
        estimate = (residual + a * terms.taylor + rest_mean) * score
        return rule.variance(estimate) + rest_variance.squeeze(-1) * rule.mean(score**2)

    b_mu, b_sigma = _coefficients(gaussian, beta)
    eps, sigma = rule.nodes, gaussian.sigma.unsqueeze(-1)
    return gaussian.per_coordinate(part(eps / sigma, b_mu), part((eps**2 - 1) / sigma, b_sigma))
