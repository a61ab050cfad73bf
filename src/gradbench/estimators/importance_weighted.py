"""Gradient estimators of K-sample importance-weighted bounds: STL, DReG and VIMCO.

On an objective offering :attr:`~gradbench.core.objective.Capability.IMPORTANCE_WEIGHTS`,
J(θ) = E[L], L = (1/T) Σ_t log (1/K) Σ_k w_tk with log w_k = log p_θ(x, z_k) − log q_θ(z_k)
(one term t below; the estimators treat each term alike and average them). ``reparam`` on such
an objective is the IWAE pathwise gradient and ``reinforce`` the IWAE score-function gradient.
With z_k = T_θ(ε_k), normalised weights w̃_k = w_k / Σ_j w_j and the total derivative split by
where θ enters,

    ∇_θ L = Σ_k w̃_k [∂_z log w_k · ∂z_k/∂θ  +  ∂_θ log p_θ(x, z_k)  −  ∂_θ log q_θ(z_k)],

the last term is the score term of q: zero in expectation for K = 1, but not for K > 1.

* ``stl``, sticking the landing (Roeder, Wu & Duvenaud 2017): drop the score term of q, i.e.
  evaluate q's density at stop_grad(θ). For K = 1 (the ELBO) the dropped term has mean zero, so
  STL is unbiased, and at q = p(z | x) the remaining term vanishes (∂_z log w = 0): zero
  variance in q's parameters. For K > 1 it is biased (Tucker et al. 2019, §3):
  :meth:`StickingTheLanding.unbiased_for` says so, and the bias test holds it to that.
* ``dreg``, doubly reparameterized gradients (Tucker, Lawson, Gu & Maddison 2019): the score
  term rewritten by reparameterizing once more, E[w̃_k ∂_θ log q_θ(z_k)] =
  E[(w̃_k − w̃_k²) ∂_z log w_k ∂z_k/∂θ], so

      g = Σ_k w̃_k² ∂_z log w_k · ∂z_k/∂θ  +  Σ_k w̃_k ∂_θ log p_θ(x, z_k),

  unbiased for every K; the first sum is the encoder's (q's parameters') gradient of the paper's
  eq. (7), the second the model's direct gradient, the same as IWAE's. Surrogate: with log w
  evaluated at stop_grad(θ) except through z, Σ_k stop(w̃_k²) log w_k + Σ_k stop(w̃_k)
  log p_θ(x, stop(z_k)).
* ``vimco``, variational inference for Monte Carlo objectives (Mnih & Rezende 2016): the score
  function of the bound with a leave-one-out baseline per particle,

      g = Σ_k (L − L_{−k}) ∇_θ log q_θ(z_k)  +  Σ_k w̃_k ∇_θ log w_k   (z fixed),
      L_{−k} = log (1/K) (Σ_{j≠k} w_j + exp((1/(K−1)) Σ_{j≠k} log w_j)),

  the k-th weight replaced by the geometric mean of the others; L_{−k} does not depend on z_k,
  so the baseline keeps the estimate unbiased. It needs no reparameterization (discrete
  latents) and K ≥ 2. The sums over j ≠ k are exact in log space (prefix and suffix
  ``logcumsumexp``), however unequal the weights.

Cost of each: 1 evaluation of the bound (K log-weights per term) per estimate. Shapes: draws
``[n, *event]``; log-weights ``[n, T..., K]``; estimates ``[n, P]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, per_sample_gradients
from gradbench.core.importance_weights import (
    bound,
    mean_over_terms,
    normalized_weights,
    term_bounds,
)
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params

_REPARAMETERIZED = frozenset(
    {Capability.IMPORTANCE_WEIGHTS, Capability.RSAMPLE, Capability.DIFFERENTIABLE_COST}
)


def _stopped(params: Params) -> Params:
    """θ cut from the graph: its values, no gradient."""
    return {k: v.detach() for k, v in params.items()}


class StickingTheLanding(Estimator):
    """Surrogate L_i = L(log p_θ(x, z_i(θ)) − log q_{stop θ}(z_i(θ))), z_i = T_θ(ε_i)."""

    name = "stl"
    description = "sticking the landing: pathwise, q's score term dropped"
    requires = _REPARAMETERIZED

    @classmethod
    def claim(cls) -> str:
        return "unbiased for K = 1 only"

    def unbiased_for(self, objective: Objective) -> bool:
        """Unbiased for the ELBO (K = 1) only (on an objective it cannot run on, the claim of
        the class)."""
        if Capability.IMPORTANCE_WEIGHTS not in objective.capabilities():
            return self.unbiased
        return objective.particles() == 1

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        noise = objective.noise(n, params, generator)

        def surrogate(theta: Params) -> Tensor:
            z = objective.transform(noise, theta)
            log_weights = objective.log_joint(z, theta) - objective.log_proposal(z, _stopped(theta))
            return bound(log_weights)

        return per_sample_gradients(surrogate, params, n)


class DoublyReparameterized(Estimator):
    """Surrogate Σ_k stop(w̃_k²) log w_k(z_k(θ); stop θ) + Σ_k stop(w̃_k) log p_θ(x, stop z_k),
    averaged over the terms (see the module docstring)."""

    name = "dreg"
    description = "doubly reparameterized: IWAE pathwise, score term by squared weights"
    requires = _REPARAMETERIZED

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        noise = objective.noise(n, params, generator)

        def surrogate(theta: Params) -> Tensor:
            z = objective.transform(noise, theta)
            fixed = _stopped(theta)
            log_weights = objective.log_joint(z, fixed) - objective.log_proposal(z, fixed)
            weights = normalized_weights(log_weights).detach()
            through_z = (weights**2 * log_weights).sum(-1)
            direct = (weights * objective.log_joint(z.detach(), theta)).sum(-1)
            return mean_over_terms(through_z + direct)

        return per_sample_gradients(surrogate, params, n)


class Vimco(Estimator):
    """Surrogate Σ_k stop(L − L_{−k}) log q_θ(z_k) + L(θ; z) with z drawn and detached,
    averaged over the terms (see the module docstring)."""

    name = "vimco"
    description = "score function of the bound, leave-one-out baseline per particle"
    requires = frozenset({Capability.IMPORTANCE_WEIGHTS})

    def skip_reason(self, objective: Objective) -> str:
        reason = super().skip_reason(objective)
        if not reason and objective.particles() < 2:
            return "needs K ≥ 2 particles for its leave-one-out baseline; the objective has 1"
        return reason

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        z = objective.sample(params, n, generator)

        def surrogate(theta: Params) -> Tensor:
            log_proposal = objective.log_proposal(z, theta)
            log_weights = objective.log_joint(z, theta) - log_proposal
            total = term_bounds(log_weights)  # [n, T...]
            fixed = log_weights.detach()
            signal = term_bounds(fixed).unsqueeze(-1) - leave_one_out_bounds(fixed)
            return mean_over_terms((signal * log_proposal).sum(-1) + total)

        return per_sample_gradients(surrogate, params, n)


def leave_one_out_bounds(log_weights: Tensor) -> Tensor:
    """L_{−k} = log (1/K) (Σ_{j≠k} w_j + exp(mean_{j≠k} log w_j)) for each k, ``[..., K]``
    (K ≥ 2); Σ_{j≠k} in log space from prefix and suffix sums, exact for any spread."""
    particles = log_weights.shape[-1]
    floor = torch.full_like(log_weights[..., :1], -math.inf)
    prefix = torch.logcumsumexp(log_weights, dim=-1)
    suffix = torch.logcumsumexp(log_weights.flip(-1), dim=-1).flip(-1)
    before = torch.cat([floor, prefix[..., :-1]], dim=-1)  # log Σ_{j<k} w_j
    after = torch.cat([suffix[..., 1:], floor], dim=-1)  # log Σ_{j>k} w_j
    geometric = (log_weights.sum(-1, keepdim=True) - log_weights) / (particles - 1)
    others = torch.stack([before, after, geometric], dim=-1)
    return torch.logsumexp(others, dim=-1) - math.log(particles)
