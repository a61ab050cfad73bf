"""Central finite differences of the single-sample cost, with common random numbers.

    g_j = [f(T_{θ+h_j e_j}(ε); θ+h_j e_j) − f(T_{θ−h_j e_j}(ε); θ−h_j e_j)] / (2 h_j),  ε ~ p(ε),

one coordinate j at a time, the same ε on both sides. Needs no derivative of f or of the sampler,
so it runs on discrete objectives too; it is biased by O(h²) terms of the smoothed cost and pays
2P evaluations of f per estimate. With the step h, variance grows where the sampler is
discontinuous in θ (≈ 1/h for Bernoulli). Survey: Mohamed et al. 2020, JMLR, §7.

Option ``step``: h. By default h_j = ε_mach^{1/3} · max(1, |θ_j|), the step that balances
truncation (∝ h²) against rounding (∝ ε_mach/h) of a central difference in the run's dtype.
Set it with ``--set fd.step=1e-3``. The step actually used is the one representable in the
dtype: h_j = ((θ_j + h_j) − (θ_j − h_j)) / 2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.estimator import Estimator
from gradbench.objective import Objective
from gradbench.params import ParamLayout, Params
from gradbench.settings import Setting, positive


class CentralDifference(Estimator):
    """All 2P perturbed parameter vectors are evaluated at once: ``[2P, n]`` costs."""

    name = "fd"
    description = "central finite differences, common random numbers"
    unbiased = False
    evals_formula = "2P"
    options = (
        Setting("step", float, None, "step h (default: ε_mach^(1/3)·max(1, |θ_j|))", positive),
    )

    def evals_per_sample(self, grad_dim: int) -> int:
        return 2 * grad_dim

    def steps(self, theta: Tensor) -> Tensor:
        """The requested step per coordinate, ``[P]``."""
        step = self.config["step"]
        if step is not None:
            return torch.full_like(theta, float(step))
        return torch.finfo(theta.dtype).eps ** (1 / 3) * theta.abs().clamp(min=1.0)

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        layout = ParamLayout.of(params)
        theta = layout.flatten(params)
        offsets = torch.diag(self.steps(theta))
        upper, lower = theta + offsets, theta - offsets  # [P, P]: row j moves coordinate j
        half_width = torch.diagonal(upper - lower) / 2  # the step the dtype represents

        perturbed = layout.unflatten(torch.cat([upper, lower]).unsqueeze(1))  # [2P, 1, *shape]
        noise = objective.noise(n, params, generator)
        with torch.no_grad():
            costs = objective.cost(objective.transform(noise, perturbed), perturbed)  # [2P, n]
        upper_cost, lower_cost = costs.chunk(2)
        return ((upper_cost - lower_cost) / (2 * half_width.unsqueeze(1))).T
