"""Objectives over any ``torch.distributions`` family, sampled with its own ``rsample()``.

Gamma, Beta and Dirichlet have no location-scale map; their ``rsample()`` differentiates the
sample implicitly, through the distribution function: ∂x/∂θ = −(∂F/∂θ)/(∂F/∂x) (Figurnov,
Mohamed & Mnih 2018, "Implicit reparameterization gradients"). torch draws these samples from
its global generator, so here the noise ε is a seed drawn from the run's generator, and
x = T_θ(ε) draws with that seed in a forked RNG state: deterministic per run, but not common
random numbers (a rejection sampler at another θ consumes other numbers), so estimators that
need them (finite differences) skip these objectives. All draws of a chunk come from its first
seed, so results depend on the chunk size; on a GPU the seed is read back to the host once per
chunk.

:class:`RsampleObjective` turns any family into an objective; :class:`GammaSquare`,
:class:`BetaSquare` and :class:`DirichletSquare` are three with exact gradients.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor
from torch.distributions import Beta, Dirichlet, Distribution, Gamma, Independent, constraints
from torch.distributions.constraints import Constraint

from gradbench.core.objective import Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least, positive


class RsampleObjective(Objective):
    """Samples with ``rsample()`` of :meth:`family`; subclasses give the family and the cost."""

    offers = frozenset()
    has_rsample = True

    @abstractmethod
    def family(self, params: Params) -> Distribution:
        """q_θ itself, batch shape = the leading dims of ``params``, built without validation."""

    def distribution(self, params: Params) -> Distribution:
        return self.family(params)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        """n seeds; the first seeds the draw of all n samples."""
        return seed_noise(n, generator)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        """Draws of shape ``[*S, *batch, *event]`` for seeds ``[*S, *batch]``, with the first
        seed (:func:`seeded_draw`)."""
        return seeded_draw(self.family(params), noise, self.name)


def seed_noise(n: int, generator: torch.Generator) -> Tensor:
    """n seeds ``[n]`` int64 from the run's generator, on its device; the first seeds a draw."""
    return torch.randint(0, 2**62, (n,), generator=generator, device=generator.device)


def seeded_draw(
    distribution: Distribution, seeds: Tensor, owner: str, reparameterized: bool = True
) -> Tensor:
    """Draws ``[*S, *batch, *event]`` of ``distribution`` for seeds ``[*S, *batch]``: its
    ``rsample`` (or ``sample`` where not ``reparameterized``) in a generator state seeded by
    the first seed. Only the generator of the seeds' device is seeded, and its state is put
    back after; ``owner`` names the objective in the error for mismatched shapes."""
    batch = tuple(distribution.batch_shape)
    if batch and tuple(seeds.shape[seeds.dim() - len(batch) :]) != batch:
        raise ValueError(
            f"{owner}: parameters with batch shape {batch} cannot be paired with "
            f"{tuple(seeds.shape)} draws"
        )
    sample_shape = seeds.shape[: seeds.dim() - len(batch)]
    if seeds.is_cuda:
        generator = torch.cuda.default_generators[seeds.device.index or 0]
    else:
        generator = torch.random.default_generator
    state = generator.get_state()
    try:
        generator.manual_seed(int(seeds.reshape(-1)[0]))
        draw = distribution.rsample if reparameterized else distribution.sample
        return draw(sample_shape)
    finally:
        generator.set_state(state)


class GammaSquare(RsampleObjective):
    """f(x) = Σ x², x ~ Gamma(α, β) per coordinate; E = Σ α(α + 1)/β²."""

    name = "gamma-square"
    description = "f(x) = Σ x², x ~ Gamma(concentration α, rate β), implicit reparameterization"
    settings = (
        Setting("dim", int, 1, "number of independent coordinates D", at_least(1)),
        Setting("concentration", float, 2.0, "concentration (shape) α", positive),
        Setting("rate", float, 1.0, "rate β", positive),
    )

    def constraints(self) -> dict[str, Constraint]:
        return {"concentration": constraints.positive, "rate": constraints.positive}

    def parameters(self) -> Params:
        dim = int(self.setting("dim"))
        return {
            "concentration": torch.full((dim,), self.setting("concentration"), dtype=torch.float64),
            "rate": torch.full((dim,), self.setting("rate"), dtype=torch.float64),
        }

    def family(self, params: Params) -> Distribution:
        gamma = Gamma(params["concentration"], params["rate"], validate_args=False)
        return Independent(gamma, 1, validate_args=False)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return (x**2).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        alpha, beta = params["concentration"], params["rate"]
        return (alpha * (alpha + 1) / beta**2).sum()


class BetaSquare(RsampleObjective):
    """f(x) = Σ x², x ~ Beta(a, b) per coordinate; E = Σ a(a + 1) / ((a + b)(a + b + 1))."""

    name = "beta-square"
    description = "f(x) = Σ x², x ~ Beta(a, b), implicit reparameterization"
    settings = (
        Setting("dim", int, 1, "number of independent coordinates D", at_least(1)),
        Setting("a", float, 2.0, "first concentration a", positive),
        Setting("b", float, 3.0, "second concentration b", positive),
    )

    def constraints(self) -> dict[str, Constraint]:
        return {"a": constraints.positive, "b": constraints.positive}

    def parameters(self) -> Params:
        dim = int(self.setting("dim"))
        return {
            "a": torch.full((dim,), self.setting("a"), dtype=torch.float64),
            "b": torch.full((dim,), self.setting("b"), dtype=torch.float64),
        }

    def family(self, params: Params) -> Distribution:
        beta = Beta(params["a"], params["b"], validate_args=False)
        return Independent(beta, 1, validate_args=False)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return (x**2).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        a, b = params["a"], params["b"]
        return (a * (a + 1) / ((a + b) * (a + b + 1))).sum()


class DirichletSquare(RsampleObjective):
    """f(x) = Σ_k x_k², x ~ Dirichlet(α) on the simplex of K categories;
    E = Σ_k α_k(α_k + 1) / (α₀(α₀ + 1)), α₀ = Σ_k α_k. The α_k rise evenly from ``alpha`` to
    2·``alpha``, so the coordinates differ."""

    name = "dirichlet-square"
    description = "f(x) = Σ x_k², x ~ Dirichlet(α), implicit reparameterization"
    settings = (
        Setting("categories", int, 3, "number of categories K", at_least(2)),
        Setting("alpha", float, 1.5, "smallest concentration", positive),
    )

    def constraints(self) -> dict[str, Constraint]:
        return {"alpha": constraints.positive}

    def parameters(self) -> Params:
        alpha = self.setting("alpha")
        count = int(self.setting("categories"))
        return {"alpha": torch.linspace(alpha, 2 * alpha, count, dtype=torch.float64)}

    def family(self, params: Params) -> Distribution:
        return Dirichlet(params["alpha"], validate_args=False)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return (x**2).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        alpha = params["alpha"]
        total = alpha.sum(-1)
        return (alpha * (alpha + 1)).sum(-1) / (total * (total + 1))
