"""Perturbed logits of a Bernoulli or categorical objective: the relaxations' common ground.

A draw of either kind is the hard threshold of logits plus noise, z = ℓ_θ + N:

* Bernoulli (:attr:`~gradbench.core.objective.Capability.BERNOULLI`): N logistic, hard
  b = 1[z > 0], soft sigmoid(z/τ), the binary Concrete (Maddison, Mnih & Teh 2017);
* categorical (:attr:`~gradbench.core.objective.Capability.CATEGORICAL`): N Gumbel per
  category, hard x = onehot(argmax z), soft softmax(z/τ), the Gumbel-softmax (Jang, Gu & Poole
  2017) or Concrete distribution.

The noise is drawn once and held fixed while θ varies, so ∇_θ of a soft draw is the pathwise
derivative the relaxations use; :meth:`Perturbation.conditional` redraws the noise given the
hard outcome (Gumbel-Rao), :meth:`Perturbation.conditional_from` makes that draw from given
fresh noise, differentiable in ℓ (REBAR's and RELAX's z̃).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.estimators.gumbel import (
    conditional_gumbel,
    conditional_logistic,
    gumbels,
    logistic,
    one_hot_argmax,
    uniforms,
)

#: The discrete families a relaxation runs on.
DISCRETE = frozenset({Capability.BERNOULLI, Capability.CATEGORICAL})


@dataclass(frozen=True)
class Perturbation:
    """The logits ℓ_θ of an objective and how its draws are made from them."""

    categorical: bool
    logits_of: Callable[[Params], Tensor]

    @classmethod
    def of(cls, objective: Objective) -> Perturbation:
        """The objective's family: categorical where it offers categorical logits, else
        Bernoulli."""
        if Capability.CATEGORICAL in objective.capabilities():
            return cls(True, objective.categorical_logits)
        return cls(False, objective.bernoulli_logits)

    def noise(self, logits: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """n draws of N ``[n, *logits.shape]``: Gumbel or logistic."""
        shape = (n, *logits.shape)
        if self.categorical:
            return gumbels(shape, logits, generator)
        return logistic(uniforms(shape, logits, generator))

    def hard(self, perturbed: Tensor) -> Tensor:
        """The discrete draw of perturbed logits z: 1[z > 0], or onehot(argmax z)."""
        if self.categorical:
            return one_hot_argmax(perturbed)
        return (perturbed > 0).to(perturbed.dtype)

    def soft(self, perturbed: Tensor, temperature: float) -> Tensor:
        """The relaxed draw: sigmoid(z/τ), or softmax(z/τ) over the categories."""
        if self.categorical:
            return torch.softmax(perturbed / temperature, dim=-1)
        return torch.sigmoid(perturbed / temperature)

    def conditional(self, logits: Tensor, hard: Tensor, generator: torch.Generator) -> Tensor:
        """Noise N ~ (N | the draw of ℓ + N is ``hard``), detached, shaped like ``hard``
        (``[*S, *event]``, any leading sample dims)."""
        logits, shape = logits.detach(), tuple(hard.shape)
        if self.categorical:
            fresh = gumbels(shape, logits, generator)
        else:
            fresh = logistic(uniforms(shape, logits, generator))
        return self.conditional_from(logits, hard, fresh) - logits

    def conditional_from(self, logits: Tensor, hard: Tensor, fresh: Tensor) -> Tensor:
        """Perturbed logits z̃ ~ (ℓ + N | hard(ℓ + N) = ``hard``) from fresh noise of the
        family's kind (:meth:`noise`), differentiable in ℓ (REBAR's and RELAX's z̃)."""
        if self.categorical:
            return conditional_gumbel(logits, hard, fresh)
        return logits + conditional_logistic(logits, hard, fresh)
