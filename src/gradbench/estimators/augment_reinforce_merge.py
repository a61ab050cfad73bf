"""ARM and DisARM: antithetic score-function estimators for factorized Bernoulli variables.

With u ~ U(0, 1)^D and the logits ℓ = ℓ_θ (p = sigmoid(ℓ)), each gives an estimate g_ℓ of
∇_ℓ E[f(b)]:

* ARM (Yin & Zhou 2019, "ARM: Augment-REINFORCE-Merge gradient for stochastic binary
  networks"): g_ℓj = (f(b¹) − f(b²)) (u_j − ½), b¹ = 1[u > sigmoid(−ℓ)], b² = 1[u < sigmoid(ℓ)].
* DisARM (Dong, Mnih & Tucker 2020, "DisARM: an antithetic gradient estimator for binary latent
  variables"): b = 1[u < p], b̃ = 1[1 − u < p],
  g_ℓj = ½ (f(b) − f(b̃)) (−1)^{b̃_j} 1[b_j ≠ b̃_j] sigmoid(|ℓ_j|).

The estimate of ∇_θ is the chain rule (∂ℓ/∂θ)ᵀ g_ℓ
(:func:`~gradbench.core.estimator.logit_pullback`). Both are unbiased; DisARM integrates out
the augmentation ARM keeps and never has a larger variance. Requires: a Bernoulli objective
whose cost does not depend on θ. Cost: 2 evaluations.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, logit_pullback
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params


class _BernoulliPair(Estimator):
    """Two antithetic evaluations; subclasses give g_ℓ from the uniforms u and the logits ℓ."""

    requires = frozenset({Capability.BERNOULLI})
    evals_formula = "2"

    def evals_per_sample(self, grad_dim: int) -> int:
        return 2

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        u = objective.noise(n, params, generator)  # [n, *event]
        with torch.no_grad():
            logit_gradient = self.logit_gradient(
                objective, params, u, objective.bernoulli_logits(params)
            )
        return logit_pullback(objective.bernoulli_logits, logit_gradient, params)

    @staticmethod
    def _per_sample(difference: Tensor, like: Tensor) -> Tensor:
        """Costs ``[n]`` shaped to broadcast against ``[n, *event]``."""
        return difference.reshape(-1, *([1] * (like.dim() - 1)))

    @abstractmethod
    def logit_gradient(
        self, objective: Objective, params: Params, u: Tensor, logit: Tensor
    ) -> Tensor:
        """g_ℓ ``[n, *event]`` from uniforms ``u`` ``[n, *event]`` and logits ``[*event]``."""


class AugmentReinforceMerge(_BernoulliPair):
    name = "arm"
    description = "ARM: antithetic augment-REINFORCE-merge for Bernoulli (Yin & Zhou 2019)"

    def logit_gradient(
        self, objective: Objective, params: Params, u: Tensor, logit: Tensor
    ) -> Tensor:
        first = (u > torch.sigmoid(-logit)).to(u.dtype)
        second = (u < torch.sigmoid(logit)).to(u.dtype)
        difference = objective.cost(first, params) - objective.cost(second, params)  # [n]
        return self._per_sample(difference, u) * (u - 0.5)


class DisARM(_BernoulliPair):
    name = "disarm"
    description = "DisARM: ARM with the augmentation integrated out (Dong et al. 2020)"

    def logit_gradient(
        self, objective: Objective, params: Params, u: Tensor, logit: Tensor
    ) -> Tensor:
        p = torch.sigmoid(logit)
        b = (u < p).to(u.dtype)
        antithetic = (1 - u < p).to(u.dtype)
        difference = objective.cost(b, params) - objective.cost(antithetic, params)  # [n]
        sign = 1 - 2 * antithetic
        weight = sign * (b != antithetic) * torch.sigmoid(logit.abs())
        return 0.5 * self._per_sample(difference, u) * weight
