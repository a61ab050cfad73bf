"""Pathwise estimator (the reparameterization trick; Kingma & Welling 2014; Rezende et al. 2014).

    g = ∇_θ f(T_θ(ε); θ),   ε ~ p(ε),   x = T_θ(ε) ~ q_θ,

the gradient through ``rsample()``; unbiased when T_θ is differentiable and f is differentiable
in x. Requires: ``rsample`` and a differentiable cost. Cost: 1 evaluation of f per estimate.
Survey: Mohamed et al. 2020, JMLR, §5.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.analysis.exact_variance import SeparableGaussian, pathwise_variance
from gradbench.core.estimator import Estimator, pathwise_gradients
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params


class Reparam(Estimator):
    """Surrogate L_i = f(T_θ(ε_i); θ) with ε_i drawn from the run's generator (or the
    objective's closed form of its gradient, :meth:`Objective.pathwise`)."""

    name = "reparam"
    description = "pathwise ∇f(x(ε; θ)) through rsample()"
    requires = frozenset({Capability.RSAMPLE, Capability.DIFFERENTIABLE_COST})

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        return pathwise_gradients(objective, params, objective.noise(n, params, generator))

    def exact_variance(self, objective: Objective, params: Params) -> Tensor | None:
        gaussian = SeparableGaussian.of(objective, params)
        return None if gaussian is None else pathwise_variance(gaussian)
