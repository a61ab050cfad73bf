"""Continuous relaxations of Bernoulli variables: Gumbel-softmax (binary Concrete) and
straight-through.

With logistic noise L = log u − log(1 − u), u ~ U(0, 1), and the logits ℓ = ℓ_θ, the relaxed
sample is b_τ = sigmoid((ℓ + L)/τ), and 1[ℓ + L > 0] ~ Bernoulli(sigmoid(ℓ)) (Maddison, Mnih &
Teh 2017; Jang, Gu & Poole 2017).

* ``gumbel-softmax``: g = ∇_θ f(b_τ). Biased: it differentiates E[f(b_τ)], not E[f(b)]; the bias
  shrinks as the temperature τ falls, and the variance grows.
* ``straight-through``: evaluates f at the hard b = 1[ℓ + L > 0] and differentiates as if it
  were b_τ (Bengio et al. 2013). Biased whatever τ.

Requires: a Bernoulli objective whose cost is defined between 0 and 1. Cost: 1 evaluation.
Option ``temperature`` τ > 0.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, per_sample_gradients
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, positive


class _Relaxation(Estimator):
    requires = frozenset({Capability.BERNOULLI, Capability.RELAXED_COST})
    unbiased = False
    straight_through: ClassVar[bool]

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        u = objective.noise(n, params, generator)
        logistic = torch.log(u) - torch.log1p(-u)
        temperature = self.option("temperature")

        def surrogate(theta: Params) -> Tensor:
            shifted = objective.bernoulli_logits(theta) + logistic
            relaxed = torch.sigmoid(shifted / temperature)
            if self.straight_through:
                hard = (shifted > 0).to(relaxed.dtype)
                relaxed = hard + relaxed - relaxed.detach()
            return objective.cost(relaxed, theta)

        return per_sample_gradients(surrogate, params, n)


class GumbelSoftmax(_Relaxation):
    name = "gumbel-softmax"
    description = "binary Concrete relaxation at temperature τ (biased)"
    options = (Setting("temperature", float, 0.5, "temperature τ", positive),)
    straight_through = False


class StraightThrough(_Relaxation):
    name = "straight-through"
    description = "hard sample forward, relaxed gradient backward (biased)"
    options = (Setting("temperature", float, 1.0, "temperature τ of the backward pass", positive),)
    straight_through = True
