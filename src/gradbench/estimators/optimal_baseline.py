"""Score function with the variance-optimal per-coordinate baseline, estimated on separate draws.

    g_j = (f(x) − b_j) ∂_j log q_θ(x) + ∂_j f(x; θ),   b_j = E[f s_j²] / E[s_j²],  s = ∇_θ log q_θ,

b_j minimises the variance of coordinate j among constant baselines (Mohamed et al. 2020,
JMLR, §7.4). It is estimated from a pilot of ``pilot`` draws made afresh in every call, apart
from the draws of the estimates, so the estimate stays unbiased; the pilot's error adds
O(1/pilot) to the variance. Cost: 1 evaluation of f per estimate, plus ``pilot`` per call
(one chunk of estimates), which ``evals_per_sample`` leaves out.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.core.estimator import (
    Estimator,
    cost_and_gradient,
    plus_cost_gradient,
    score_function,
)
from gradbench.core.objective import Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least


class OptimalBaseline(Estimator):
    name = "optimal-baseline"
    description = "score function, optimal per-coordinate baseline from a separate pilot"
    options = (
        Setting("pilot", int, 1000, "draws that estimate the baseline, per chunk", at_least(2)),
    )

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        pilot = int(self.option("pilot"))
        pilot_cost, pilot_score, _ = self._terms(objective, params, pilot, generator)
        squared = pilot_score**2
        weight = squared.sum(0)
        tiny = torch.finfo(weight.dtype).tiny
        # A coordinate whose score is always 0 (θ_j enters the cost only) needs no baseline.
        baseline = torch.where(
            weight > 0, (pilot_cost.unsqueeze(1) * squared).sum(0) / weight.clamp(min=tiny), 0.0
        )
        cost, score, cost_gradient = self._terms(objective, params, n, generator)
        return plus_cost_gradient((cost.unsqueeze(1) - baseline) * score, cost_gradient)

    @staticmethod
    def _terms(
        objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """f(x_i) ``[n]``, ∇_θ log q_θ(x_i) ``[n, P]`` and ∇_θ f(x_i; θ) ``[n, P]`` (None for a
        cost free of θ)."""
        x = objective.sample(params, n, generator)
        cost, cost_gradient = cost_and_gradient(objective, params, x)
        return cost, score_function(objective, params, x), cost_gradient
