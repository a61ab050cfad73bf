"""The Bernoulli toy: b ~ Bernoulli(sigmoid(θ)) in ``dim`` coordinates, f(b) = Σ (b − t)².

J(θ) = Σ p(1 − t)² + (1 − p)t² with p = sigmoid(θ), so ∇_θ J = p(1 − p)(1 − 2t) per coordinate.
At θ = 0, t = 0.499 the gradient is 5·10⁻⁴ while the per-sample variance of REINFORCE is
≈ 0.0156251: the classic case where the score function needs a control variate
(Tucker et al. 2017, "REBAR"; Yin & Zhou 2019, "ARM").

Sampling uses ε ~ U(0, 1) and b = 1[ε < p]; the map is a step in θ, so there is no pathwise
gradient (the distribution has no ``rsample``), but common random numbers still couple draws.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent

from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least


class BernoulliToy(Objective):
    """f(b) = Σ (b − t)², b ~ Bernoulli(sigmoid(logit)); parameter ``logit`` ``[dim]``."""

    name = "bernoulli-toy"
    description = "f(b) = Σ (b − t)², b ~ Bernoulli(sigmoid(logit))"
    settings = (
        Setting("dim", int, 1, "number of independent coordinates D", at_least(1)),
        Setting("logit", float, 0.0, "logit θ of every coordinate"),
        Setting("target", float, 0.499, "target t"),
    )
    differentiable_cost = False
    has_rsample = False
    offers = frozenset({Capability.COMMON_NOISE, Capability.BERNOULLI, Capability.RELAXED_COST})

    @property
    def target(self) -> float:
        return self.setting("target")

    def parameters(self) -> Params:
        dim = int(self.setting("dim"))
        return {"logit": torch.full((dim,), self.setting("logit"), dtype=torch.float64)}

    def distribution(self, params: Params) -> Distribution:
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        bernoulli = Bernoulli(logits=params["logit"], validate_args=False)
        return Independent(bernoulli, 1, validate_args=False)

    def bernoulli_logits(self, params: Params) -> Tensor:
        return params["logit"]

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        logit = params["logit"]
        return torch.rand(
            (n, logit.shape[-1]), generator=generator, dtype=logit.dtype, device=generator.device
        )

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return (noise < torch.sigmoid(params["logit"])).to(noise.dtype)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return ((x - self.target) ** 2).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        p = torch.sigmoid(params["logit"])
        return (p * (1 - self.target) ** 2 + (1 - p) * self.target**2).sum()

    def optimal_value(self) -> float:
        """The infimum Σ_d min(t², (1 − t)²), as p → 0 or 1."""
        return self.setting("dim") * min(self.target**2, (1 - self.target) ** 2)
