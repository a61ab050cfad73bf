"""Score-function estimator (REINFORCE; Williams 1992; Glynn 1990).

    g = f(x; θ) ∇_θ log q_θ(x) + ∇_θ f(x; θ),   x ~ q_θ,

unbiased for any q_θ with a differentiable log-density, discrete or continuous; the second term
is present only when the cost depends on θ. No baseline. Requires: nothing beyond ``log_prob``.
Cost: 1 evaluation of f per estimate. Survey: Mohamed et al. 2020, JMLR, §4.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.analysis.exact_variance import SeparableGaussian, score_function_variance
from gradbench.core.estimator import (
    Estimator,
    cost_and_gradient,
    per_sample_gradients,
    plus_cost_gradient,
)
from gradbench.core.objective import Objective
from gradbench.core.params import Params


class Reinforce(Estimator):
    """Surrogate L_i = stop_grad(f(x_i; θ)) · log q_θ(x_i) + f(x_i; θ), x_i detached."""

    name = "reinforce"
    description = "score function f(x)·∇log q(x), no baseline"

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        x = objective.sample(params, n, generator)
        score = objective.score(x, params)
        if score is not None:  # a closed-form score: f ∇log q without autograd through q
            cost, cost_gradient = cost_and_gradient(objective, params, x)
            return plus_cost_gradient(score.mul_(cost.unsqueeze(1)), cost_gradient)

        def surrogate(theta: Params) -> Tensor:
            cost = objective.cost(x, theta)
            return cost.detach() * objective.distribution(theta).log_prob(x) + cost

        return per_sample_gradients(surrogate, params, n)

    def exact_variance(self, objective: Objective, params: Params) -> Tensor | None:
        gaussian = SeparableGaussian.of(objective, params)
        return None if gaussian is None else score_function_variance(gaussian)
