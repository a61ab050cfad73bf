"""Finite differences of the single-sample cost f(T_θ(ε); θ), which need no derivative at all.

With e_j the j-th unit vector and h_j the step:

* ``fd`` — central, common random numbers: g_j = [F(θ + h_j e_j, ε) − F(θ − h_j e_j, ε)] / 2h_j,
  one ε for both sides. Bias O(h²) of the smoothed cost; 2P evaluations.
* ``fd-forward`` — forward, common random numbers: g_j = [F(θ + h_j e_j, ε) − F(θ, ε)] / h_j.
  Bias O(h); P + 1 evaluations.
* ``fd-independent`` — central without common random numbers: each of the 2P points draws its
  own ε. Its variance grows like 1/h²; 2P evaluations.
* ``spsa`` — simultaneous perturbation (Spall 1992): one random direction Δ ∈ {−1, 1}^P,
  g = [F(θ + hΔ, ε) − F(θ − hΔ, ε)] / 2h · Δ, one step h = max_j h_j for every coordinate.
  Bias O(h²); 2 evaluations whatever P.

None needs a differentiable f or sampler, so all run on discrete objectives, where the sampler
is a step in θ and the variance grows like 1/h. Survey: Mohamed et al. 2020, JMLR, §7.

Option ``step``: h. By default h_j = ε_mach^{1/3} · max(1, |θ_j|) for central schemes and
ε_mach^{1/2} · max(1, |θ_j|) for the forward one, the steps that balance truncation against
rounding in the run's dtype (``--set fd.step=1e-3`` sets it). The step used is the one the
dtype represents: h_j = ((θ_j + h_j) − (θ_j − h_j)) / 2. Option ``max_evals`` (default 1000):
an objective whose θ needs more evaluations per estimate (a network's weights) is skipped with
the reason, unless raised.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import ParamLayout, Params
from gradbench.core.settings import Setting, at_least, positive


class _FiniteDifference(Estimator):
    """Evaluates F at every perturbed θ at once: ``[points, n]`` costs."""

    unbiased = False
    requires = frozenset({Capability.COMMON_NOISE})
    options = (
        Setting(
            "step",
            float,
            None,
            "step h (default: ε_mach^(1/3), forward ε_mach^(1/2), times max(1, |θ_j|))",
            positive,
        ),
        Setting(
            "max_evals",
            int,
            1000,
            "largest number of evaluations per estimate it runs with (more: skipped)",
            at_least(1),
        ),
    )
    #: The exponent of ε_mach in the default step.
    step_exponent: ClassVar[float] = 1 / 3

    def skip_reason(self, objective: Objective) -> str:
        """Also skips θ so large that one estimate costs more than ``max_evals`` evaluations
        (a network's weights): the suite stays quick, and ``--set NAME.max_evals=…`` runs it."""
        if reason := super().skip_reason(objective):
            return reason
        grad_dim = ParamLayout.of(objective.parameters()).size
        evals, limit = self.evals_per_sample(grad_dim), int(self.option("max_evals"))
        if evals <= limit:
            return ""
        return (
            f"needs {self.evals_formula} = {evals} evaluations per estimate (P = {grad_dim}),"
            f" above {self.name}.max_evals = {limit}; --set {self.name}.max_evals={evals} runs it"
        )

    def steps(self, theta: Tensor) -> Tensor:
        """The requested step per coordinate, ``[P]``."""
        step = self.config["step"]
        if step is not None:
            return torch.full_like(theta, float(step))
        return torch.finfo(theta.dtype).eps ** self.step_exponent * theta.abs().clamp(min=1.0)

    @staticmethod
    def _costs(
        objective: Objective,
        layout: ParamLayout,
        points: Tensor,
        noise: Tensor,
    ) -> Tensor:
        """F at each parameter vector ``points [K, P]`` for each noise row: ``[K, n]``."""
        perturbed = layout.unflatten(points.unsqueeze(1))  # [K, 1, *shape]
        with torch.no_grad():
            return objective.cost(objective.transform(noise, perturbed), perturbed)


class CentralDifference(_FiniteDifference):
    name = "fd"
    description = "central finite differences, common random numbers"
    evals_formula = "2P"
    common_noise: ClassVar[bool] = True

    def evals_per_sample(self, grad_dim: int) -> int:
        return 2 * grad_dim

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        layout = ParamLayout.of(params)
        theta = layout.flatten(params)
        offsets = torch.diag(self.steps(theta))
        upper, lower = theta + offsets, theta - offsets  # [P, P]: row j moves coordinate j
        half_width = torch.diagonal(upper - lower) / 2  # the step the dtype represents
        points = torch.cat([upper, lower])
        if self.common_noise:
            costs = self._costs(objective, layout, points, objective.noise(n, params, generator))
        else:  # one noise draw per point: [2P, n, *event]
            noise = objective.noise(points.shape[0] * n, params, generator)
            noise = noise.reshape(points.shape[0], n, *noise.shape[1:])
            costs = self._costs(objective, layout, points, noise)
        upper_cost, lower_cost = costs.chunk(2)
        return ((upper_cost - lower_cost) / (2 * half_width.unsqueeze(1))).T


class IndependentCentralDifference(CentralDifference):
    name = "fd-independent"
    description = "central finite differences, independent noise on every side"
    common_noise = False


class ForwardDifference(_FiniteDifference):
    name = "fd-forward"
    description = "forward finite differences, common random numbers"
    evals_formula = "P+1"
    step_exponent = 1 / 2

    def evals_per_sample(self, grad_dim: int) -> int:
        return grad_dim + 1

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        layout = ParamLayout.of(params)
        theta = layout.flatten(params)
        upper = theta + torch.diag(self.steps(theta))
        width = torch.diagonal(upper) - theta
        points = torch.cat([upper, theta.unsqueeze(0)])
        costs = self._costs(objective, layout, points, objective.noise(n, params, generator))
        return ((costs[:-1] - costs[-1]) / width.unsqueeze(1)).T


class SimultaneousPerturbation(_FiniteDifference):
    name = "spsa"
    description = "simultaneous perturbation along a random ±1 direction (Spall 1992)"
    evals_formula = "2"

    def evals_per_sample(self, grad_dim: int) -> int:
        return 2

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        layout = ParamLayout.of(params)
        theta = layout.flatten(params)
        flip = torch.rand((n, theta.numel()), generator=generator, device=theta.device) < 0.5
        direction = 1 - 2 * flip.to(theta.dtype)  # [n, P], Rademacher
        step = self.steps(theta).max()
        upper, lower = theta + step * direction, theta - step * direction
        noise = objective.noise(n, params, generator)
        costs = []
        for point in (upper, lower):  # θ differs per estimate: [n, *shape] parameters
            perturbed = layout.unflatten(point)
            with torch.no_grad():
                costs.append(objective.cost(objective.transform(noise, perturbed), perturbed))
        # (upper − lower)_j = 2hΔ_j, and 1/Δ_j = Δ_j: g_j = [F(θ + hΔ) − F(θ − hΔ)] Δ_j / 2h.
        return (costs[0] - costs[1]).unsqueeze(-1) / (upper - lower)
