"""Measure-valued gradients of the Gaussian: weak derivatives, coordinate by coordinate.

The derivative of N(x; μ, σ²) in one parameter is a constant times the difference of two
probability densities, so ∂_θ E[f] = c_θ (E_{p⁺}[f] − E_{p⁻}[f]) (Pflug 1996; Mohamed et al.
2020, JMLR, §6). For coordinate j, with every other coordinate at the common draw x = μ + σε:

* ∂/∂μ_j: c = 1/(σ_j √(2π)), x_j⁺ = μ_j + σ_j R, x_j⁻ = μ_j − σ_j R', R, R' ~ Rayleigh(1)
  (Weibull with shape 2, scale √2);
* ∂/∂σ_j: c = 1/σ_j, x_j⁺ = μ_j + σ_j M (M double-sided Maxwell), x_j⁻ = μ_j + σ_j Z
  (Z ~ N(0, 1)).

``mvd`` couples each pair (R' = R; Z = M·U with U ~ U(0, 1), which is exactly N(0, 1)), the
common random numbers that make its variance small; ``mvd-uncoupled`` draws R' and Z
independently. Both are unbiased. Requires: a Gaussian objective whose cost does not depend on
θ. Cost: 2P evaluations of f per estimate.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from gradbench.analysis.exact_variance import SeparableGaussian, measure_valued_variance
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import ParamLayout, Params


def _rayleigh(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    uniform = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.sqrt(-2 * torch.log1p(-uniform))


def _double_sided_maxwell(
    shape: tuple[int, ...], like: Tensor, generator: torch.Generator
) -> Tensor:
    """±√(χ²₃): the norm of three standard normals with a random sign."""
    normals = torch.randn((*shape, 3), generator=generator, dtype=like.dtype, device=like.device)
    sign = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device) < 0.5
    return torch.linalg.vector_norm(normals, dim=-1) * (1 - 2 * sign.to(like.dtype))


class _WeakDerivative(Estimator):
    requires = frozenset({Capability.GAUSSIAN})
    evals_formula = "2P"
    coupled: ClassVar[bool]

    def evals_per_sample(self, grad_dim: int) -> int:
        return 2 * grad_dim

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        mu, sigma = params["mu"], params["sigma"]
        D = mu.shape[-1]
        base = objective.transform(objective.noise(n, params, generator), params)  # [n, D]
        shape = (n, D)
        rayleigh = _rayleigh(shape, mu, generator)
        rayleigh_minus = rayleigh if self.coupled else _rayleigh(shape, mu, generator)
        maxwell = _double_sided_maxwell(shape, mu, generator)
        if self.coupled:
            uniform = torch.rand(shape, generator=generator, dtype=mu.dtype, device=mu.device)
            normal = maxwell * uniform
        else:
            normal = torch.randn(shape, generator=generator, dtype=mu.dtype, device=mu.device)

        replacements = torch.stack(
            [
                mu + sigma * rayleigh,
                mu - sigma * rayleigh_minus,
                mu + sigma * maxwell,
                mu + sigma * normal,
            ]
        )  # [4, n, D]: coordinate j of each of the four points
        points = base.expand(4, D, n, D).clone()  # [4, j, n, D]: base with coordinate j replaced
        torch.diagonal(points, dim1=1, dim2=3).copy_(replacements)
        with torch.no_grad():
            costs = objective.cost(points, params)  # [4, D, n]
        d_mu = (costs[0] - costs[1]).T / (sigma * math.sqrt(2 * math.pi))
        d_sigma = (costs[2] - costs[3]).T / sigma
        return ParamLayout.of(params).flatten({"mu": d_mu, "sigma": d_sigma}, batch_dims=1)

    def exact_variance(self, objective: Objective, params: Params) -> Tensor | None:
        gaussian = SeparableGaussian.of(objective, params)
        return None if gaussian is None else measure_valued_variance(gaussian, self.coupled)


class CoupledMeasureValued(_WeakDerivative):
    name = "mvd"
    description = "measure-valued (weak derivative) Gaussian gradient, coupled pairs"
    coupled = True


class UncoupledMeasureValued(_WeakDerivative):
    name = "mvd-uncoupled"
    description = "measure-valued (weak derivative) Gaussian gradient, independent pairs"
    coupled = False
