"""ReinMax: a second-order straight-through estimator for categorical variables.

Liu, Liu, Gao, Gao & Han 2023, "Bridging discrete and backpropagation: straight-through and
beyond" (NeurIPS). Straight-through is a first-order (Euler) approximation of the gradient;
ReinMax applies Heun's method. With the hard draw D ~ OneHotCategorical(π₀), π₀ = softmax(ℓ),
g = ∇f(D) (the relaxed cost's gradient at the one-hot D), π₁ = ½(softmax(ℓ/τ) + D) and the
softmax Jacobian J(π) = diag(π) − ππᵀ, its gradient with respect to each variable's logits is

    g_ℓ = 2 J(π₁) g − ½ J(π₀) g

(each term sums to 0 over the categories, the direction softmax ignores), and ∇_θ is its
pull-back (∂ℓ/∂θ)ᵀ g_ℓ. Biased; the paper recommends τ ≥ 1.

Requires: a categorical objective whose cost is differentiable on the simplex. Cost: 1
evaluation of f and its gradient in x. Option ``temperature`` τ > 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, logit_pullback
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, positive
from gradbench.estimators.gumbel import gumbel_max


def softmax_jacobian_product(probabilities: Tensor, vector: Tensor) -> Tensor:
    """J(π) v = π ⊙ v − π (πᵀv) over the last dim (J symmetric, so also Jᵀ v)."""
    return probabilities * vector - probabilities * (probabilities * vector).sum(-1, keepdim=True)


class ReinMax(Estimator):
    name = "reinmax"
    description = "ReinMax: second-order straight-through for categoricals (biased)"
    requires = frozenset({Capability.CATEGORICAL, Capability.RELAXED_COST})
    unbiased = False
    options = (Setting("temperature", float, 1.0, "temperature τ of π₁", positive),)

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        with torch.no_grad():
            logits = objective.categorical_logits(params)
            hard, _ = gumbel_max(logits, n, generator)  # [n, *V, K]
        leaf = hard.clone().requires_grad_()
        with torch.enable_grad():
            (cost_gradient,) = torch.autograd.grad(
                objective.cost(leaf, params).sum(), leaf, materialize_grads=True
            )
        with torch.no_grad():
            first = torch.softmax(logits, dim=-1)
            second = 0.5 * (torch.softmax(logits / self.option("temperature"), dim=-1) + hard)
            logit_gradient = 2 * softmax_jacobian_product(second, cost_gradient)
            logit_gradient -= 0.5 * softmax_jacobian_product(first, cost_gradient)
        return logit_pullback(objective.categorical_logits, logit_gradient, params)
