"""The categorical toy: x ~ Categorical(softmax(θ)) over K categories, f(x) = (x − t)².

The logits are θ_k = spread · (2k/(K − 1) − 1), evenly spread over [−spread, spread]. With
p = softmax(θ) and c_k = (k − t)², J(θ) = Σ_k p_k c_k, enumerated exactly, so
∂J/∂θ_k = p_k (c_k − J). Sampling is by inversion, x = #{k : ε > F_k} with ε ~ U(0, 1) and F
the cumulative probabilities: a step in θ, so there is no pathwise gradient, but common random
numbers still couple draws.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution

from gradbench.core.objective import Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least


class CategoricalToy(Objective):
    """f(x) = (x − t)², x ~ Categorical(softmax(logits)); parameter ``logits`` ``[K]``."""

    name = "categorical-toy"
    description = "f(x) = (x − t)², x ~ Categorical(softmax(logits)) over K categories"
    reference_method = "exact (enumeration)"
    differentiable_cost = False
    has_rsample = False
    settings = (
        Setting("categories", int, 4, "number of categories K", at_least(2)),
        Setting("spread", float, 1.0, "logits spread evenly over [−spread, spread]"),
        Setting("target", float, 1.5, "target t"),
    )

    def parameters(self) -> Params:
        spread = self.setting("spread")
        count = int(self.setting("categories"))
        return {"logits": torch.linspace(-spread, spread, count, dtype=torch.float64)}

    def distribution(self, params: Params) -> Distribution:
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        return Categorical(logits=params["logits"], validate_args=False)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        logits = params["logits"]
        return torch.rand((n,), generator=generator, dtype=logits.dtype, device=generator.device)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        cumulative = torch.softmax(params["logits"], dim=-1).cumsum(dim=-1)  # [*B, K]
        index = (noise.unsqueeze(-1) > cumulative).sum(dim=-1)
        return index.clamp(max=cumulative.shape[-1] - 1).to(noise.dtype)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return (x - self.setting("target")) ** 2

    def expected_cost(self, params: Params) -> Tensor:
        logits = params["logits"]
        values = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
        return (torch.softmax(logits, dim=-1) * (values - self.setting("target")) ** 2).sum()
