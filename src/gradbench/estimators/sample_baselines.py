"""Score function with a baseline made of the other draws: K draws per estimate.

    g = (1/K) Σ_k (f(x_k) − b_k) ∇_θ log q_θ(x_k) + (1/K) Σ_k ∇_θ f(x_k; θ),  x_1..x_K ~ q_θ,

* ``rloo``: b_k = mean of the other K − 1 costs (leave one out; Kool, van Hoof & Welling 2019,
  "Buy 4 REINFORCE samples, get a baseline for free!"). b_k is independent of x_k, so the
  estimate is unbiased.
* ``batch-mean``: b_k = mean of all K costs, x_k's own included. Its own cost in the baseline
  scales the score-function term by (K − 1)/K: biased, and the bias columns show it.

Requires: ``log_prob`` only. Cost: K evaluations of f per estimate. Option ``K`` (≥ 2).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gradbench.core.estimator import (
    Estimator,
    per_sample_gradients,
    per_sample_values_and_gradients,
    plus_cost_gradient,
)
from gradbench.core.objective import Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least


class _SampleBaseline(Estimator):
    """K draws per estimate; subclasses say whether x_k's own cost enters its baseline."""

    options = (Setting("K", int, 2, "draws per estimate", at_least(2)),)
    evals_formula = "K"
    leave_one_out: ClassVar[bool]

    @property
    def draws(self) -> int:
        return int(self.option("K"))

    def evals_per_sample(self, grad_dim: int) -> int:
        return self.draws

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        K = self.draws
        draws = objective.sample(params, K * n, generator)
        x = draws.reshape(K, n, *draws.shape[1:])  # draw k of estimate i is x[k, i]
        score = objective.score(draws, params)
        if score is not None:  # a closed-form score: no autograd through q
            return self._with_score(objective, params, x, score.reshape(K, n, -1))

        def surrogate(theta: Params) -> Tensor:
            cost = objective.cost(x, theta)  # [K, n]
            f = cost.detach()
            log_q = objective.distribution(theta).log_prob(x)  # [K, n]
            return ((f - self._baseline(f)) * log_q + cost).mean(0)

        return per_sample_gradients(surrogate, params, n)

    def _baseline(self, f: Tensor) -> Tensor:
        """b_k ``[K, n]`` from the costs ``[K, n]``: the others' mean, or all K's."""
        K = f.shape[0]
        return (f.sum(0) - f) / (K - 1) if self.leave_one_out else f.mean(0)

    def _with_score(self, objective: Objective, params: Params, x: Tensor, score: Tensor) -> Tensor:
        """The estimate from the scores ``[K, n, P]`` of the draws x ``[K, n, *event]``, with
        (1/K) Σ_k ∇f(x_k; θ) from the same evaluation of the costs (none for a cost free of θ)."""
        costs: dict[str, Tensor] = {}

        def mean_cost(theta: Params) -> Tensor:
            cost = objective.cost(x, theta)  # [K, n]
            costs["f"] = cost.detach()
            return cost.mean(0)

        _, cost_gradient = per_sample_values_and_gradients(mean_cost, params, x.shape[1])
        f = costs["f"]
        estimates = ((f - self._baseline(f)).unsqueeze(-1) * score).mean(0)
        return plus_cost_gradient(estimates, cost_gradient)


class LeaveOneOut(_SampleBaseline):
    name = "rloo"
    description = "score function, leave-one-out baseline over K draws (Kool et al. 2019)"
    leave_one_out = True


class BatchMean(_SampleBaseline):
    name = "batch-mean"
    description = "score function, baseline = mean of the K draws incl. its own (biased)"
    unbiased = False
    leave_one_out = False
