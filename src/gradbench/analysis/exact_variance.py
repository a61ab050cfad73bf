"""Exact per-sample variances of Gaussian gradient estimators, by quadrature.

On a separable Gaussian objective, f(x) = Σ_d c(x_d) with x_d = μ_d + σ_d ε_d independent,
coordinate j of these estimators is a function of one or two scalar draws (others cancel or
enter only through their first two moments), so its variance is a one- or two-dimensional
integral. With s the score of the coordinate, R_j = Σ_{d≠j} c(x_d) and x = μ_j + σ_j ε:

* score function, g = f(x)·s with s_μ = ε/σ, s_σ = (ε² − 1)/σ; R_j is independent of ε and
  of mean r̄_j, so Var g = Var[(c(x) + r̄_j)·s] + Var(R_j)·E[s²];
* pathwise, g_μ = c'(x), g_σ = c'(x)·ε;
* measure-valued, coupled: g_μ = (c(μ + σR) − c(μ − σR))/(σ√(2π)) with R ~ Rayleigh(1), and
  g_σ = (c(μ + σM) − c(μ + σZ))/σ with M double-sided Maxwell and Z = M·U, U ~ U(0, 1). Given
  M = m, Z is uniform between 0 and m, so the cross moment is one integral,
  E[c(μ + σM) c(μ + σZ)] = ∫ m φ(m) c(μ + σm) C(m) dm with C(m) = ∫_0^m c(μ + σz) dz;
* measure-valued, uncoupled: the same differences of independent terms, whose variances add.

Variances are E[(g − E g)²] where g is a function of one draw, and E[g²] − (E g)² for the
coupled g_σ (whose E g² is not ≪ its variance for these estimators). The integrals use composite
Gauss–Legendre rules against the densities of ε (φ), R (r e^{−r²/2}, r ≥ 0) and M (m² φ(m)):
panels of width 1/16 with 8 nodes on [−12, 12] (R on [0, 12]); C(m) integrates from the panel
edges. That is exact up to rounding for polynomial costs, and accurate to about 1e-10 for costs
that oscillate up to ~90 radians per standard deviation (cos(kx) with kσ ≤ 45). Gauss–Hermite
quadrature is not used: it aliases oscillating costs (cos(10x) at σ = 1: 3% error with 120
nodes). Mohamed et al. 2020, JMLR, §4–6 give the estimators; docs/measurement.md lists closed
forms these integrals reproduce.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from gradbench.analysis.quadrature import maxwell_rule, normal_rule, rayleigh_rule, running_integral
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import ParamLayout, Params

Cost = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SeparableGaussian:
    """f(x) = Σ_d c(x_d), x_d ~ N(μ_d, σ_d²) independently; ``mu``, ``sigma`` float64 ``[D]``."""

    mu: Tensor
    sigma: Tensor
    cost: Cost
    layout: ParamLayout

    @classmethod
    def of(cls, objective: Objective, params: Params) -> SeparableGaussian | None:
        """The structure of a Gaussian objective whose cost has a usable separable form."""
        if Capability.GAUSSIAN not in objective.offers:
            return None
        cost = objective.separable_cost()
        if cost is None:
            return None
        mu, sigma = (params[k].detach().to("cpu", torch.float64) for k in ("mu", "sigma"))
        return cls(mu, sigma, cost, ParamLayout.of(params))

    def points(self, standard: Tensor) -> Tensor:
        """x = μ + σ·z for each coordinate: standard points ``[*Q]`` → ``[D, *Q]``."""
        shape = (-1,) + (1,) * standard.dim()
        return self.mu.view(shape) + self.sigma.view(shape) * standard

    def per_coordinate(self, d_mu: Tensor, d_sigma: Tensor) -> Tensor:
        """The ∂μ and ∂σ parts ``[D]`` each → ``[P]`` in the objective's parameter order."""
        return self.layout.flatten({"mu": d_mu, "sigma": d_sigma})


def score_function_variance(gaussian: SeparableGaussian) -> Tensor:
    """Var of g = f(x)·∇ log q(x) per coordinate, ``[P]``."""
    rule = normal_rule()
    eps = rule.nodes
    cost = gaussian.cost(gaussian.points(eps))  # [D, Q]
    cost_mean, cost_variance = rule.mean(cost), rule.variance(cost)
    rest_mean = cost_mean.sum() - cost_mean  # E R_j
    rest_variance = cost_variance.sum() - cost_variance  # Var R_j
    sigma = gaussian.sigma.unsqueeze(-1)

    def part(score: Tensor) -> Tensor:  # score [D, Q]
        estimate = (cost + rest_mean.unsqueeze(-1)) * score
        return rule.variance(estimate) + rest_variance * rule.mean(score**2)

    return gaussian.per_coordinate(part(eps / sigma), part((eps**2 - 1) / sigma))


def pathwise_variance(gaussian: SeparableGaussian) -> Tensor:
    """Var of g = ∇_θ f(μ + σε) per coordinate, ``[P]``."""
    rule = normal_rule()
    x = gaussian.points(rule.nodes).requires_grad_()
    with torch.enable_grad():
        (slope,) = torch.autograd.grad(gaussian.cost(x).sum(), x)  # c'(x) [D, Q]
    return gaussian.per_coordinate(rule.variance(slope), rule.variance(slope * rule.nodes))


def measure_valued_variance(gaussian: SeparableGaussian, coupled: bool) -> Tensor:
    """Var of the weak-derivative estimate per coordinate, ``[P]``; ``coupled``: R' = R and
    Z = M·U (the ``mvd`` estimator), else independent (``mvd-uncoupled``)."""
    rayleigh, maxwell, normal = rayleigh_rule(), maxwell_rule(), normal_rule()
    sigma, scale_mu = gaussian.sigma, gaussian.sigma * math.sqrt(2 * math.pi)
    up_mu = gaussian.cost(gaussian.points(rayleigh.nodes))  # c(μ + σR) [D, Q]
    down_mu = gaussian.cost(gaussian.points(-rayleigh.nodes))  # c(μ − σR)
    up_sigma = gaussian.cost(gaussian.points(maxwell.nodes))  # c(μ + σM)
    base = up_sigma  # the Maxwell and normal rules share their nodes: c(μ + σε) as well
    if coupled:
        d_mu = rayleigh.variance(up_mu - down_mu) / scale_mu**2
        antiderivative = running_integral(lambda z: gaussian.cost(gaussian.points(z)))
        cross = normal.mean(normal.nodes * up_sigma * antiderivative)
        second = maxwell.mean(up_sigma**2) - 2 * cross + normal.mean(base**2)
        mean = maxwell.mean(up_sigma) - normal.mean(base)
        d_sigma = (second - mean**2) / sigma**2
    else:
        d_mu = (rayleigh.variance(up_mu) + rayleigh.variance(down_mu)) / scale_mu**2
        d_sigma = (maxwell.variance(up_sigma) + normal.variance(base)) / sigma**2
    return gaussian.per_coordinate(d_mu, d_sigma)
