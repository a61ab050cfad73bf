"""ARM and DisARM: antithetic score-function estimators for factorized Bernoulli variables.

With u ~ U(0, 1)^D and the logits θ (p = sigmoid(θ)):

* ARM (Yin & Zhou 2019, "ARM: Augment-REINFORCE-Merge gradient for stochastic binary
  networks"): g_j = (f(b¹) − f(b²)) (u_j − ½), b¹ = 1[u > sigmoid(−θ)], b² = 1[u < sigmoid(θ)].
* DisARM (Dong, Mnih & Tucker 2020, "DisARM: an antithetic gradient estimator for binary latent
  variables"): b = 1[u < p], b̃ = 1[1 − u < p],
  g_j = ½ (f(b) − f(b̃)) (−1)^{b̃_j} 1[b_j ≠ b̃_j] sigmoid(|θ_j|).

Both are unbiased; DisARM integrates out the augmentation ARM keeps and never has a larger
variance. Requires: a Bernoulli objective whose cost does not depend on θ. Cost: 2 evaluations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.estimator import Estimator
from gradbench.objective import Capability, Objective
from gradbench.params import Params


class _BernoulliPair(Estimator):
    requires = frozenset({Capability.BERNOULLI})
    evals_formula = "2"

    def evals_per_sample(self, grad_dim: int) -> int:
        return 2

    @staticmethod
    def _uniform_and_logits(
        objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return objective.noise(n, params, generator), params["logit"]


class AugmentReinforceMerge(_BernoulliPair):
    name = "arm"
    description = "ARM: antithetic augment-REINFORCE-merge for Bernoulli (Yin & Zhou 2019)"

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        u, logit = self._uniform_and_logits(objective, params, n, generator)
        first = (u > torch.sigmoid(-logit)).to(u.dtype)
        second = (u < torch.sigmoid(logit)).to(u.dtype)
        difference = objective.cost(first, params) - objective.cost(second, params)  # [n]
        return difference.unsqueeze(1) * (u - 0.5)


class DisARM(_BernoulliPair):
    name = "disarm"
    description = "DisARM: ARM with the augmentation integrated out (Dong et al. 2020)"

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        u, logit = self._uniform_and_logits(objective, params, n, generator)
        p = torch.sigmoid(logit)
        b = (u < p).to(u.dtype)
        antithetic = (1 - u < p).to(u.dtype)
        difference = objective.cost(b, params) - objective.cost(antithetic, params)  # [n]
        sign = 1 - 2 * antithetic
        return 0.5 * difference.unsqueeze(1) * sign * (b != antithetic) * torch.sigmoid(logit.abs())
