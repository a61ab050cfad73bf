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

from gradbench.core.estimator import Estimator, per_sample_gradients
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
        x = objective.sample(params, K * n, generator)
        x = x.reshape(K, n, *x.shape[1:])  # draw k of estimate i is x[k, i]

        def surrogate(theta: Params) -> Tensor:
            cost = objective.cost(x, theta)  # [K, n]
            f = cost.detach()
            baseline = (f.sum(0) - f) / (K - 1) if self.leave_one_out else f.mean(0)
            log_q = objective.distribution(theta).log_prob(x)  # [K, n]
            return ((f - baseline) * log_q + cost).mean(0)

        return per_sample_gradients(surrogate, params, n)


class LeaveOneOut(_SampleBaseline):
    name = "rloo"
    description = "score function, leave-one-out baseline over K draws (Kool et al. 2019)"
    leave_one_out = True


class BatchMean(_SampleBaseline):
    name = "batch-mean"
    description = "score function, baseline = mean of the K draws incl. its own (biased)"
    unbiased = False
    leave_one_out = False
