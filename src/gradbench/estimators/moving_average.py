"""Score function with a moving-average baseline b, kept as state between steps.

    g = (f(x) − b) ∇_θ log q_θ(x) + ∇_θ f(x; θ),   x ~ q_θ,
    b ← β b + (1 − β) · mean_i f(x_i)   after each step (``update``),

the exponential moving average of the batch-mean cost, the baseline of Mohamed et al. 2020,
JMLR, §7 and the default of Pyro and storchastic. b is fixed during one call of ``estimate`` and
made of earlier calls' draws only, so it does not depend on x_i: the n estimates are i.i.d. and
unbiased whatever b is (E[∇_θ log q_θ(x)] = 0). Before any update b = 0, which is plain
``reinforce``. The first update sets b to that batch's mean rather than pulling it from 0 toward
it (a bias-corrected start), so after k updates b is a weighted mean of the k batch means with
weights summing to 1.

State: b and the number of updates; ``gradbench train`` resets it at the start and updates it
after each step; ``compare`` measures it after a warm-up of ``warm_up_steps`` = 100 updates of
``warm_up_batch`` = 16 estimates at the measured θ. Requires: ``log_prob`` only. Cost: 1
evaluation of f per estimate. Option ``decay`` (β, 0 ≤ β < 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.core.estimator import (
    Estimator,
    cost_and_gradient,
    per_sample_gradients,
    plus_cost_gradient,
)
from gradbench.core.objective import Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting


def _unit_interval(value: float) -> str | None:
    """Check that returns a message unless ``0 <= value < 1``."""
    return None if 0 <= value < 1 else "must be in [0, 1)"


class MovingAverageBaseline(Estimator):
    """Surrogate L_i = (stop_grad(f(x_i; θ)) − b) · log q_θ(x_i) + f(x_i; θ), x_i detached."""

    name = "ema-baseline"
    description = "score function with a moving-average baseline b (state)"
    options = (Setting("decay", float, 0.9, "β of b ← β b + (1 − β) mean f", _unit_interval),)
    stateful = True
    warm_up_steps = 100
    warm_up_batch = 16

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._baseline: Tensor | float = 0.0
        self._updates = 0
        self._pending: Tensor | None = None

    @property
    def baseline(self) -> Tensor | float:
        """The current b: 0.0 before any update, else a 0-d tensor on the cost's device."""
        return self._baseline

    @property
    def updates(self) -> int:
        """Updates since the last :meth:`reset`."""
        return self._updates

    def reset(self, objective: Objective, params: Params) -> None:
        self._baseline = 0.0
        self._updates = 0
        self._pending = None

    def update(self, objective: Objective, params: Params) -> None:
        """b ← mean f of the last :meth:`estimate` call on the first update, else
        β b + (1 − β) · that mean; nothing when no estimate came since the last update."""
        pending = self._pending
        if pending is None:
            return
        if self._updates == 0 or not isinstance(self._baseline, Tensor):
            self._baseline = pending
        else:
            beta = self.option("decay")
            self._baseline = beta * self._baseline.to(pending) + (1 - beta) * pending
        self._updates += 1
        self._pending = None

    def state_description(self) -> str:
        if self._updates == 0:
            return "baseline b = 0 (no updates)"
        return f"baseline b = {float(self._baseline):.4g} after {self._updates} updates"

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        x = objective.sample(params, n, generator)
        baseline = self._baseline
        score = objective.score(x, params)
        if score is not None:  # a closed-form score: (f − b) ∇log q without autograd through q
            f, cost_gradient = cost_and_gradient(objective, params, x)
            b = baseline.to(f) if isinstance(baseline, Tensor) else baseline
            self._pending = f.mean()
            return plus_cost_gradient(score.mul_((f - b).unsqueeze(1)), cost_gradient)

        def surrogate(theta: Params) -> Tensor:
            cost = objective.cost(x, theta)
            f = cost.detach()
            b = baseline.to(f) if isinstance(baseline, Tensor) else baseline
            self._pending = f.mean()  # a device tensor: no host sync here
            return (f - b) * objective.distribution(theta).log_prob(x) + cost

        return per_sample_gradients(surrogate, params, n)
