"""Gaussian objectives: x ~ N(μ, diag σ²) in ``dim`` dimensions, f(x) = Σ_d c(x_d).

Parameters are ``mu`` and ``sigma`` (σ itself, not log σ), each ``[dim]``. Sampling is the
location-scale reparameterization x = μ + σ ⊙ ε with ε ~ N(0, I), which is what ``rsample()``
does, here drawn from the run's generator. The noise is also given by inversion, ε = Φ⁻¹(u)
coordinatewise for u ~ U(0, 1)^D (``noise_from_uniforms``), so quasi-random points can replace u.

Each subclass gives the per-coordinate cost c and its Gaussian expectation E[c(x_d)] in closed
form; the exact gradient is autograd of that expectation. Reference values (one coordinate,
a = μ − k) for ``gaussian-square``: ∇_μ J = 2a, ∇_σ J = 2σ; per-sample variance of ∂/∂μ is
(a⁴ + 14a²σ² + 15σ⁴)/σ² for the score function and 4σ² for the pathwise estimator
(Mohamed et al. 2020, JMLR, §3–5).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal, constraints
from torch.distributions.constraints import Constraint

from gradbench.core.errors import InputError
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import ParamLayout, Params
from gradbench.core.settings import Setting, at_least, positive

GAUSSIAN_SETTINGS = (
    Setting("dim", int, 1, "number of independent coordinates D", at_least(1)),
    Setting("mu", float, 1.0, "mean μ of every coordinate"),
    Setting("sigma", float, 1.0, "standard deviation σ of every coordinate", positive),
)


class DiagonalGaussian(Objective):
    """q_θ = N(μ, diag σ²) with parameters ``mu`` and ``sigma`` ``[D]``, sampled as
    x = μ + σ ⊙ ε, ε ~ N(0, I); subclasses give θ's values, the cost and J."""

    offers = frozenset(
        {Capability.COMMON_NOISE, Capability.GAUSSIAN, Capability.NOISE_BY_INVERSION}
    )
    has_rsample = True

    def distribution(self, params: Params) -> Distribution:
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        normal = Normal(params["mu"], params["sigma"], validate_args=False)
        return Independent(normal, 1, validate_args=False)

    def score(self, x: Tensor, params: Params) -> Tensor | None:
        """∇ log N(x; μ, σ²) per coordinate: ∂/∂μ = (x − μ)/σ², ∂/∂σ = ((x − μ)² − σ²)/σ³,
        written with z = (x − μ)/σ as z/σ and (z² − 1)/σ; 0 for any other parameter (a
        subclass's cost parameter, which q does not see), ``[n, P]``. None for a subclass
        with a distribution of its own."""
        mu, sigma = params["mu"], params["sigma"]
        if type(self).distribution is not DiagonalGaussian.distribution or not (
            mu.shape == sigma.shape == x.shape[1:]
        ):  # another distribution, or μ, σ that broadcast: autograd's business
            return None
        layout = ParamLayout.of(params)
        # Zeros only where a parameter other than μ and σ has columns.
        allocate = x.new_empty if set(params) == {"mu", "sigma"} else x.new_zeros
        score = allocate(len(x), layout.size)
        parts = layout.unflatten(score)  # views into the score's columns
        z = (x - mu).div_(sigma)
        torch.div(z, sigma, out=parts["mu"])
        torch.div(z.square_().sub_(1), sigma, out=parts["sigma"])
        return score

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        mu = params["mu"]
        return torch.randn(
            (n, mu.shape[-1]), generator=generator, dtype=mu.dtype, device=generator.device
        )

    def noise_from_uniforms(self, uniforms: Tensor, params: Params) -> Tensor:
        """ε = Φ⁻¹(u), the standard normal quantile of each coordinate."""
        return torch.special.ndtri(uniforms)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return params["mu"] + params["sigma"] * noise

    def constraints(self) -> dict[str, Constraint]:
        return {"sigma": constraints.positive}


class GaussianObjective(DiagonalGaussian):
    """The Gaussian family's settings and separable costs; subclasses add c(x) and E[c(x)]."""

    def parameters(self) -> Params:
        dim = int(self.setting("dim"))
        return {
            "mu": torch.full((dim,), self.setting("mu"), dtype=torch.float64),
            "sigma": torch.full((dim,), self.setting("sigma"), dtype=torch.float64),
        }

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return self.coordinate_cost(x).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        return self.expected_coordinate_cost(params["mu"], params["sigma"]).sum()

    @property
    def k(self) -> float:
        return self.setting("k")

    def separable_cost(self) -> Callable[[Tensor], Tensor] | None:
        """c itself; None where c(x)² has tails too heavy for the quadrature of the exact
        variances (then none is given)."""
        return self.coordinate_cost

    def pathwise(self, noise: Tensor, params: Params) -> Tensor | None:
        """∇_θ f(μ + σ ⊙ ε) per noise row: ∂/∂μ = c'(x), ∂/∂σ = c'(x) ⊙ ε, ``[n, 2D]``; None
        where c' is not given (:meth:`coordinate_slope`), is not the slope of this class's c
        (a subclass that redefines c and not c'), or a subclass changes the parameters (their
        names, or shapes other than the noise's), the transform or the cost."""
        if (
            set(params) != {"mu", "sigma"}
            or not params["mu"].shape == params["sigma"].shape == noise.shape[1:]
            or type(self).transform is not DiagonalGaussian.transform
            or type(self).cost is not GaussianObjective.cost
            or not _slope_belongs_to_cost(type(self))
        ):
            return None
        x = self.transform(noise, params)
        slope = self.coordinate_slope(x)
        if slope is None:
            return None
        layout = ParamLayout.of(params)
        gradient = x.new_empty(len(x), layout.size)
        parts = layout.unflatten(gradient)  # views into its columns
        parts["mu"].copy_(slope)
        torch.mul(slope, noise, out=parts["sigma"])
        return gradient

    @abstractmethod
    def coordinate_cost(self, x: Tensor) -> Tensor:
        """c(x), elementwise."""

    def coordinate_slope(self, x: Tensor) -> Tensor | None:
        """c'(x), elementwise, in closed form (a new tensor); None (the default): the
        pathwise estimators differentiate c by autograd."""
        return None

    @abstractmethod
    def expected_coordinate_cost(self, mu: Tensor, sigma: Tensor) -> Tensor:
        """E[c(x)] for x ~ N(μ, σ²), elementwise, in closed form."""


def _slope_belongs_to_cost(cls: type) -> bool:
    """Whether the class that defines ``cls``'s ``coordinate_cost`` defines its
    ``coordinate_slope`` too (a slope inherited past a redefined cost is another c's)."""
    owner = next(base for base in cls.__mro__ if "coordinate_cost" in vars(base))
    return "coordinate_slope" in vars(owner)


class GaussianSquare(GaussianObjective):
    """f(x) = Σ (x − k)²; E = Σ (μ − k)² + σ²."""

    name = "gaussian-square"
    description = "f(x) = Σ (x − k)², x ~ N(μ, σ²)"
    settings = (*GAUSSIAN_SETTINGS, Setting("k", float, 3.0, "shift k of the quadratic"))

    def coordinate_cost(self, x: Tensor) -> Tensor:
        return (x - self.k) ** 2

    def coordinate_slope(self, x: Tensor) -> Tensor:
        return (x - self.k).mul_(2)

    def expected_coordinate_cost(self, mu: Tensor, sigma: Tensor) -> Tensor:
        return (mu - self.k) ** 2 + sigma**2

    def optimal_value(self) -> float:
        """0, the infimum: μ = k and σ → 0."""
        return 0.0


class GaussianExp(GaussianObjective):
    """f(x) = Σ exp(−k x²); E = Σ (1 + 2kσ²)^{-1/2} exp(−k μ² / (1 + 2kσ²)), for 1 + 2kσ² > 0."""

    name = "gaussian-exp"
    description = "f(x) = Σ exp(−k x²), x ~ N(μ, σ²)"
    settings = (*GAUSSIAN_SETTINGS, Setting("k", float, 1.0, "rate k (needs 1 + 2kσ² > 0)"))

    def validate(self) -> None:
        sigma = self.setting("sigma")
        if 1 + 2 * self.k * sigma**2 <= 0:
            raise InputError(
                f"{self.name}: k={self.k:g} with sigma={sigma:g} gives an infinite expectation;"
                " need 1 + 2·k·sigma² > 0"
            )

    def separable_cost(self) -> Callable[[Tensor], Tensor] | None:
        # For k < 0, c(x)² = exp(2|k|x²) is integrable only while 4|k|σ² < 1, and then with
        # tails far beyond the quadrature's reach.
        return self.coordinate_cost if self.k >= 0 else None

    def coordinate_cost(self, x: Tensor) -> Tensor:
        return torch.exp(-self.k * x**2)

    def coordinate_slope(self, x: Tensor) -> Tensor:
        """−2k x exp(−k x²)."""
        return self.coordinate_cost(x).mul_(x).mul_(-2 * self.k)

    def expected_coordinate_cost(self, mu: Tensor, sigma: Tensor) -> Tensor:
        spread = 1 + 2 * self.k * sigma**2
        return torch.exp(-self.k * mu**2 / spread) / torch.sqrt(spread)

    def optimal_value(self) -> float:
        """The infimum: 0 per coordinate for k > 0 (|μ| → ∞), else 1 (μ = 0, σ → 0)."""
        return self.setting("dim") * (0.0 if self.k > 0 else 1.0)


class GaussianCos(GaussianObjective):
    """f(x) = Σ cos(k x); E = Σ cos(kμ) exp(−k²σ²/2)."""

    name = "gaussian-cos"
    description = "f(x) = Σ cos(k x), x ~ N(μ, σ²)"
    settings = (*GAUSSIAN_SETTINGS, Setting("k", float, 5.0, "frequency k"))

    def optimal_value(self) -> float:
        """The infimum: −1 per coordinate for k ≠ 0 (μ = π/k, σ → 0), else 1."""
        return self.setting("dim") * (-1.0 if self.k != 0 else 1.0)

    def coordinate_cost(self, x: Tensor) -> Tensor:
        return torch.cos(self.k * x)

    def coordinate_slope(self, x: Tensor) -> Tensor:
        """−k sin(k x)."""
        return torch.sin(self.k * x).mul_(-self.k)

    def expected_coordinate_cost(self, mu: Tensor, sigma: Tensor) -> Tensor:
        return torch.cos(self.k * mu) * torch.exp(-0.5 * (self.k * sigma) ** 2)
