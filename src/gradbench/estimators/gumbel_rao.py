"""Gumbel-Rao: straight-through Gumbel with its backward pass Rao-Blackwellized over the noise.

Paulus, Maddison & Krause 2021, "Rao-Blackwellizing the straight-through Gumbel-softmax
gradient estimator". Straight-through Gumbel (:mod:`.relaxation`) draws z = ℓ + N, evaluates f
at the hard draw D = hard(z) and returns g_ST = (∂soft(z)/∂θ)ᵀ ∇f(D). Its conditional
expectation given D keeps the mean and cannot raise the variance:

    g_GR = E[g_ST | D] ≈ (1/M) Σ_m (∂soft(ℓ + N_m)/∂θ)ᵀ ∇f(D),   N_m ~ (N | hard(ℓ + N) = D),

M conditional draws of the noise (:meth:`~.perturbation.Perturbation.conditional`: Gumbels
given their argmax, logistic noise given its sign). With M = 1 it has the law of
straight-through; its variance falls with M as Var(g_GR,∞) + E[Var(g_ST | D)]/M. Biased, as
straight-through is (the same mean, whatever M).

Requires: a Bernoulli or categorical objective whose cost is defined between the discrete
values. Cost: 1 evaluation of f (and M relaxations in the backward pass). Options
``temperature`` τ > 0 and ``samples`` M ≥ 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, per_sample_gradients
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least, positive
from gradbench.estimators.perturbation import DISCRETE, Perturbation


class GumbelRao(Estimator):
    """Surrogate f(D + s̄ − stop_grad(s̄)), s̄ = (1/M) Σ_m soft(ℓ_θ + N_m)."""

    name = "gumbel-rao"
    description = "straight-through Gumbel, backward averaged over M conditional draws (biased)"
    requires = frozenset({Capability.RELAXED_COST})
    requires_one_of = DISCRETE
    unbiased = False
    options = (
        Setting("temperature", float, 1.0, "temperature τ of the backward pass", positive),
        Setting("samples", int, 10, "conditional noise draws M per estimate", at_least(1)),
    )

    def working_bytes(self, objective: Objective, params: Params) -> int:
        """The M conditional noise draws per estimate and, for the backward pass, the M
        perturbed logits, their relaxations and the relaxations' gradients: 4 arrays of
        M × the logits' size."""
        if self.skip_reason(objective):
            return 0
        logits = Perturbation.of(objective).logits_of(params)
        return 4 * int(self.option("samples")) * logits.numel() * logits.element_size()

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        family = Perturbation.of(objective)
        draws = int(self.option("samples"))
        with torch.no_grad():
            logits = family.logits_of(params)
            hard = family.hard(logits + family.noise(logits, n, generator))  # [n, *event]
            repeated = hard.unsqueeze(1).expand(n, draws, *hard.shape[1:])
            noise = family.conditional(logits, repeated, generator)  # [n, M, *event]
        temperature = self.option("temperature")

        def surrogate(theta: Params) -> Tensor:
            perturbed = family.logits_of(theta).unsqueeze(1) + noise
            relaxed = family.soft(perturbed, temperature).mean(1)
            return objective.cost(hard + relaxed - relaxed.detach(), theta)

        return per_sample_gradients(surrogate, params, n)
