"""IndeCateR: for each variable, the exact sum over its values, with the others sampled.

De Smet, Sansone & Zuidberg Dos Martires 2023, "Differentiable sampling of categorical
distributions using the CatLog-derivative trick" (NeurIPS); for Bernoulli variables the local
expectation gradient of Titsias & Lázaro-Gredilla 2015. With independent variables x_v ~
Categorical(p_v), p_v = softmax(ℓ_v), one draw x ~ q_θ and x^{v←k} the draw with variable v set
to category k,

    ∂J/∂ℓ_vk = E_{x_{−v}}[Σ_j (∂p_vj/∂ℓ_vk) f(x^{v←j})],
    g_ℓ,vk = p_vk (f(x^{v←k}) − Σ_j p_vj f(x^{v←j})),

the exact expectation over x_v given the others, so g is unbiased, and exact when there is
one variable (variance 0). For a Bernoulli variable (two values, ℓ its logit) the same sum is
g_ℓ,v = p_v (1 − p_v) (f(x^{v←1}) − f(x^{v←0})). ∇_θ is the pull-back (∂ℓ/∂θ)ᵀ g_ℓ. All
variants of the one draw are evaluated at once.

Where the cost is a mean of independent terms, f = (1/T) Σ_t f_t(x_t)
(:meth:`~gradbench.core.objective.Objective.cost_terms`: a VAE's images), variable v of term t
moves f_t only, so one evaluation sets variable v of every term to k and reads each term's
change: V/T·K evaluations instead of V·K.

Requires: a Bernoulli or categorical objective (no relaxed cost: f is evaluated at discrete
values only). Cost: V·K evaluations for V variables of K categories (2V for Bernoulli), or
V/T·K with T independent terms.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, logit_pullback
from gradbench.core.objective import Objective
from gradbench.core.params import Params
from gradbench.estimators.perturbation import DISCRETE, Perturbation


class IndeCateR(Estimator):
    name = "indecater"
    description = "IndeCateR: exact sum over each variable's values, the others sampled"
    requires_one_of = DISCRETE
    evals_formula = "V·K"

    def evaluations(self, objective: Objective, params: Params) -> int:
        """V·K for categorical variables (2V for Bernoulli ones), V/T·K with T independent
        terms; the formula's default where the objective is neither."""
        if self.skip_reason(objective):
            return super().evaluations(objective, params)
        family = Perturbation.of(objective)
        logits = family.logits_of(params)
        variables = logits.numel() // (logits.shape[-1] if family.categorical else 1)
        values = logits.shape[-1] if family.categorical else 2
        return variables // (_terms(objective, params, logits) or 1) * values

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        family = Perturbation.of(objective)
        with torch.no_grad():
            logits = family.logits_of(params)
            draw = family.hard(logits + family.noise(logits, n, generator))
            if family.categorical:
                probabilities = torch.softmax(logits, dim=-1)
                values = torch.eye(logits.shape[-1], dtype=draw.dtype, device=draw.device)
            else:
                probabilities = torch.sigmoid(logits).unsqueeze(-1)
                draw = draw.unsqueeze(-1)  # one value per variable: a K = 1 "category" dim
                values = torch.tensor([[0.0], [1.0]], dtype=draw.dtype, device=draw.device)
            costs = _variant_costs(objective, params, draw, values, family.categorical)
            if family.categorical:  # p_vk (f(x^{v←k}) − Σ_j p_vj f(x^{v←j}))
                centred = costs - (probabilities * costs).sum(-1, keepdim=True)
                logit_gradient = probabilities * centred
            else:  # p_v (1 − p_v) (f(x^{v←1}) − f(x^{v←0}))
                logit_gradient = probabilities * (1 - probabilities) * costs.diff(dim=-1)
        return logit_pullback(
            family.logits_of, logit_gradient.reshape(draw.shape[0], *logits.shape), params
        )


def _terms(objective: Objective, params: Params, like: Tensor) -> int | None:
    """T, the independent terms of the cost, from one probe evaluation at zeros; None where
    the cost has no such form."""
    event = objective.distribution(params).event_shape
    probe = torch.zeros((1, *event), dtype=like.dtype, device=like.device)
    terms = objective.cost_terms(probe, params)
    return None if terms is None else terms.shape[-1]


def _variant_costs(
    objective: Objective, params: Params, draw: Tensor, values: Tensor, categorical: bool
) -> Tensor:
    """f(x^{v←k}) for every variable v and value k, ``[n, *V, W]`` for draws ``[n, *V, C]``
    (C = K one-hot dims for categoricals, 1 for Bernoulli) and the W values ``[W, C]``; with
    independent terms, each variant sets variable v of every term at once and the term of v
    is read (its change is f's, up to the 1/T)."""
    n = draw.shape[0]
    event = draw.shape[1:] if categorical else draw.shape[1:-1]
    terms = _terms(objective, params, draw)
    flat = draw.reshape(n, terms or 1, -1, draw.shape[-1])  # [n, T, V/T, C]
    per_term = flat.shape[2]
    own = torch.eye(per_term, dtype=torch.bool, device=draw.device)[:, None, None, :, None]
    variants = torch.where(own, values[None, :, None, None, :], flat[:, None, None])
    variants = variants.reshape(n, per_term, values.shape[0], *event)  # [n, V/T, W, *event]
    if terms is None:
        costs = objective.cost(variants, params).unsqueeze(-1)  # [n, V/T, W, 1]
    else:
        costs = objective.cost_terms(variants, params) / terms  # [n, V/T, W, T]
    return costs.permute(0, 3, 1, 2).reshape(*draw.shape[:-1], values.shape[0])
