"""An installable gradbench plugin: an antithetic pathwise estimator and a quartic objective.

pip install examples/gradbench-antithetic
gradbench compare gaussian-quartic gaussian-square -e reparam -e antithetic
gradbench check antithetic
"""

from torch import Tensor

import gradbench
from gradbench.objectives.gaussian import GAUSSIAN_SETTINGS, GaussianObjective

__version__ = "0.1.0"


class AntitheticReparam(gradbench.Estimator):
    """Pathwise gradient averaged over the antithetic pair ε, −ε:

        g = ½ [∇_θ f(T_θ(ε)) + ∇_θ f(T_θ(−ε))],   ε ~ N(0, I).

    Unbiased when the base noise is symmetric (−ε has the law of ε, as for the Gaussian);
    it removes the odd part of the integrand, so it is exact for an f linear in x.
    Requires: rsample, differentiable cost. Cost: 2 evaluations per estimate.
    """

    name = "antithetic"
    description = "pathwise gradient averaged over the antithetic pair ε, −ε"
    requires = frozenset({gradbench.Capability.RSAMPLE, gradbench.Capability.DIFFERENTIABLE_COST})
    evals_formula = "2"

    def evals_per_sample(self, grad_dim: int) -> int:
        return 2

    def estimate(self, objective, params, n, generator) -> Tensor:
        noise = objective.noise(n, params, generator)

        def surrogate(theta):
            plus = objective.cost(objective.transform(noise, theta), theta)
            minus = objective.cost(objective.transform(-noise, theta), theta)
            return (plus + minus) / 2

        return gradbench.per_sample_gradients(surrogate, params, n)


class GaussianQuartic(GaussianObjective):
    """f(x) = Σ x⁴, x ~ N(μ, σ²); E = Σ μ⁴ + 6μ²σ² + 3σ⁴."""

    name = "gaussian-quartic"
    description = "f(x) = Σ x⁴, x ~ N(μ, σ²)"
    settings = GAUSSIAN_SETTINGS

    def coordinate_cost(self, x: Tensor) -> Tensor:
        return x**4

    def expected_coordinate_cost(self, mu: Tensor, sigma: Tensor) -> Tensor:
        return mu**4 + 6 * mu**2 * sigma**2 + 3 * sigma**4


__all__ = ["AntitheticReparam", "GaussianQuartic"]
