"""Continuous relaxations of Bernoulli and categorical variables: Gumbel-softmax (the Concrete
distribution) and straight-through.

With the logits ℓ = ℓ_θ and fixed noise N (logistic for a Bernoulli, Gumbel per category for a
categorical; :mod:`.perturbation`), z = ℓ + N gives the exact draw hard(z) (1[z > 0], or
onehot(argmax z)) and its relaxation at temperature τ, soft(z) = sigmoid(z/τ) or softmax(z/τ)
(Maddison, Mnih & Teh 2017, "The Concrete distribution"; Jang, Gu & Poole 2017, "Categorical
reparameterization with Gumbel-softmax").

* ``gumbel-softmax``: g = ∇_θ f(soft(z)). Biased: it differentiates E[f(soft(z))], not
  E[f(hard(z))]; the bias shrinks as τ falls, and the variance grows.
* ``straight-through``: evaluates f at hard(z) and differentiates as if it were soft(z),
  g = (∂soft(z)/∂θ)ᵀ ∇f(hard(z)) (Bengio, Léonard & Courville 2013; the straight-through
  Gumbel estimator of Jang et al. 2017). Biased whatever τ.

Requires: a Bernoulli or categorical objective whose cost is defined between the discrete
values (on [0, 1], or on the simplex). Cost: 1 evaluation. Option ``temperature`` τ > 0.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, per_sample_gradients
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, positive
from gradbench.estimators.perturbation import DISCRETE, Perturbation


class _Relaxation(Estimator):
    requires = frozenset({Capability.RELAXED_COST})
    requires_one_of = DISCRETE
    unbiased = False
    straight_through: ClassVar[bool]

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        family = Perturbation.of(objective)
        with torch.no_grad():
            noise = family.noise(family.logits_of(params), n, generator)
        temperature = self.option("temperature")

        def surrogate(theta: Params) -> Tensor:
            perturbed = family.logits_of(theta) + noise
            relaxed = family.soft(perturbed, temperature)
            if self.straight_through:
                relaxed = family.hard(perturbed) + relaxed - relaxed.detach()
            return objective.cost(relaxed, theta)

        return per_sample_gradients(surrogate, params, n)


class GumbelSoftmax(_Relaxation):
    name = "gumbel-softmax"
    description = "Concrete (Gumbel-softmax) relaxation at temperature τ (biased)"
    options = (Setting("temperature", float, 0.5, "temperature τ", positive),)
    straight_through = False


class StraightThrough(_Relaxation):
    name = "straight-through"
    description = "hard sample forward, relaxed gradient backward (biased)"
    options = (Setting("temperature", float, 1.0, "temperature τ of the backward pass", positive),)
    straight_through = True
