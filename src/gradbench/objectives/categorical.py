"""Categorical objectives: one categorical variable (the toy) and a product of D of them.

Draws are one-hot: a variable with K categories is x ∈ {e_0, …, e_{K−1}} ⊂ ℝ^K, q_θ is
``OneHotCategorical(softmax(ℓ))`` per variable, and the objectives offer
:attr:`~gradbench.core.objective.Capability.CATEGORICAL` with the logits ℓ = θ. Category k sits
at the position v = k/(K − 1) ∈ [0, 1] (the toy uses the index k itself), so a cost of the
positions is also defined on the simplex: at a relaxed y (non-negative, Σ_k y_k = 1) the
position is the expected one, v(y) = Σ_k y_k k/(K − 1) — the **relaxed cost** the relaxations
differentiate (:attr:`~gradbench.core.objective.Capability.RELAXED_COST`).

Sampling is by inversion, x = e_i with i = #{k : ε > F_k}, ε ~ U(0, 1) per variable and F the
cumulative probabilities: a step in θ, so there is no pathwise gradient, but common random
numbers still couple draws. The exact J is a sum over the outcomes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, OneHotCategorical

from gradbench.core.errors import InputError
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least

#: The most joint outcomes K^D that :class:`CategoricalProduct` enumerates for its exact J.
MAX_OUTCOMES = 2**21
#: Outcomes summed per pass of the enumeration (bounds its memory, ~D·8 bytes each).
_OUTCOMES_PER_PASS = 2**18

_OFFERS = frozenset({Capability.COMMON_NOISE, Capability.CATEGORICAL, Capability.RELAXED_COST})


def one_hot_by_inversion(noise: Tensor, logits: Tensor) -> Tensor:
    """x = e_i, i = #{k : ε > F_k}: uniforms ``[*S, *V]`` and logits ``[*B, *V, K]`` broadcast
    to one-hot draws ``[*S, *V, K]`` in the noise's dtype."""
    cumulative = torch.softmax(logits, dim=-1).cumsum(dim=-1)
    index = (noise.unsqueeze(-1) > cumulative).sum(dim=-1).clamp(max=logits.shape[-1] - 1)
    return torch.nn.functional.one_hot(index, logits.shape[-1]).to(noise.dtype)


def spread_logits(spread: float, categories: int) -> Tensor:
    """Logits ``spread · (2k/(K − 1) − 1)``, evenly over [−spread, spread], float64 ``[K]``."""
    return torch.linspace(-spread, spread, categories, dtype=torch.float64)


class CategoricalToy(Objective):
    """f(x) = (i − t)² for the one-hot x = e_i ~ OneHotCategorical(softmax(logits)); parameter
    ``logits`` ``[K]``.

    The logits are θ_k = spread · (2k/(K − 1) − 1). With p = softmax(θ) and c_k = (k − t)²,
    J(θ) = Σ_k p_k c_k, so ∂J/∂θ_k = p_k (c_k − J). The relaxed cost is (Σ_k y_k k − t)².
    """

    name = "categorical-toy"
    description = "f(x) = (x − t)², x ~ Categorical(softmax(logits)) over K categories"
    reference_method = "exact (enumeration)"
    differentiable_cost = False
    has_rsample = False
    offers = _OFFERS
    settings = (
        Setting("categories", int, 4, "number of categories K", at_least(2)),
        Setting("spread", float, 1.0, "logits spread evenly over [−spread, spread]"),
        Setting("target", float, 1.5, "target t"),
    )

    def parameters(self) -> Params:
        return {"logits": spread_logits(self.setting("spread"), int(self.setting("categories")))}

    def distribution(self, params: Params) -> Distribution:
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        return OneHotCategorical(logits=params["logits"], validate_args=False)

    def categorical_logits(self, params: Params) -> Tensor:
        return params["logits"]

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        logits = params["logits"]
        return torch.rand((n,), generator=generator, dtype=logits.dtype, device=generator.device)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return one_hot_by_inversion(noise, params["logits"])

    def cost(self, x: Tensor, params: Params) -> Tensor:
        index = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device)
        return (x @ index - self.setting("target")) ** 2

    def expected_cost(self, params: Params) -> Tensor:
        logits = params["logits"]
        outcomes = torch.eye(logits.shape[-1], dtype=logits.dtype, device=logits.device)
        return (torch.softmax(logits, dim=-1) * self.cost(outcomes, params)).sum()


class CategoricalProduct(Objective):
    """D independent categoricals with K categories each, and a cost of the joint outcome that
    does not factorise; parameter ``logits`` ``[D, K]``.

    With positions v_d = k_d/(K − 1) ∈ [0, 1] of the drawn categories, their mean v̄ and the
    coupling c ∈ [0, 1],

        f(x) = c · (v̄ − t)² + (1 − c) · (1/D) Σ_d (v_d − t)²,

    a squared distance of the mean position from t (c = 1, the default: every pair of variables
    interacts) or the separable mean of squared distances (c = 0, the synthetic cost of De Smet
    et al. 2023, "Differentiable sampling of categorical distributions using the CatLog-
    Derivative trick", up to the factor 1/D). Every variable starts at the logits
    spread · (2k/(K − 1) − 1). The exact J sums f over all K^D outcomes (at most
    :data:`MAX_OUTCOMES`), weighted by Π_d p_{d,k_d}; autograd differentiates the sum. The
    relaxed cost is f at the expected positions v_d(y) = Σ_k y_dk k/(K − 1).
    """

    name = "categorical-product"
    description = "D categoricals with K categories; cost of the mean position, not separable"
    reference_method = "exact (enumeration)"
    differentiable_cost = False
    has_rsample = False
    offers = _OFFERS
    settings = (
        Setting("variables", int, 4, "number of categorical variables D", at_least(1)),
        Setting("categories", int, 5, "categories K of each variable", at_least(2)),
        Setting("coupling", float, 1.0, "c: 1 = (mean position − t)², 0 = separable"),
        Setting("target", float, 0.45, "target position t"),
        Setting("spread", float, 0.5, "logits spread evenly over [−spread, spread]"),
    )

    def validate(self) -> None:
        variables, categories = int(self.setting("variables")), int(self.setting("categories"))
        if categories**variables > MAX_OUTCOMES:
            raise InputError(
                f"{self.name}: variables={variables}, categories={categories} have"
                f" {categories**variables:.3g} joint outcomes; the exact gradient enumerates"
                f" at most {MAX_OUTCOMES} (2^21)"
            )
        if not 0 <= self.setting("coupling") <= 1:
            raise InputError(
                f"{self.name}: setting coupling={self.setting('coupling'):g} must be in [0, 1]"
            )

    def parameters(self) -> Params:
        variables, categories = int(self.setting("variables")), int(self.setting("categories"))
        logits = spread_logits(self.setting("spread"), categories)
        return {"logits": logits.expand(variables, categories).clone()}

    def distribution(self, params: Params) -> Distribution:
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        one_hot = OneHotCategorical(logits=params["logits"], validate_args=False)
        return Independent(one_hot, 1, validate_args=False)

    def categorical_logits(self, params: Params) -> Tensor:
        return params["logits"]

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        logits = params["logits"]
        shape = (n, logits.shape[-2])
        return torch.rand(shape, generator=generator, dtype=logits.dtype, device=generator.device)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return one_hot_by_inversion(noise, params["logits"])

    @staticmethod
    def positions(x: Tensor) -> Tensor:
        """v_d = Σ_k x_dk k/(K − 1) of one-hot or relaxed draws ``[*S, D, K]``: ``[*S, D]``."""
        categories = x.shape[-1]
        return x @ (torch.arange(categories, dtype=x.dtype, device=x.device) / (categories - 1))

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return self.cost_of_positions(self.positions(x))

    def cost_terms(self, x: Tensor, params: Params) -> Tensor | None:
        """With c = 0 the cost is the mean of the D terms (v_d − t)², each of one variable."""
        if self.setting("coupling") != 0:
            return None
        return (self.positions(x) - self.setting("target")) ** 2

    def cost_of_positions(self, v: Tensor) -> Tensor:
        """f from the positions ``[*S, D]`` of the variables, ``[*S]``."""
        coupling, target = self.setting("coupling"), self.setting("target")
        coupled = (v.mean(-1) - target) ** 2
        if coupling == 1:
            return coupled
        return coupling * coupled + (1 - coupling) * ((v - target) ** 2).mean(-1)

    def expected_cost(self, params: Params) -> Tensor:
        """Σ over the K^D outcomes k of Π_d p_{d,k_d} · f(k/(K − 1))."""
        logits = params["logits"]
        variables, categories = logits.shape[-2:]
        log_p = torch.log_softmax(logits, dim=-1).reshape(-1)  # [D·K], variable-major
        offsets = categories * torch.arange(variables, device=logits.device)
        total = logits.new_zeros(())
        for digits in _outcomes(variables, categories, logits.device):
            weight = log_p[digits + offsets].sum(-1).exp()
            total = total + weight @ self.cost_of_positions(digits.to(logits) / (categories - 1))
        return total

    def optimal_value(self) -> float:
        """The infimum over θ, the least f over the outcomes (a point mass reaches it)."""
        variables, categories = int(self.setting("variables")), int(self.setting("categories"))
        return min(
            float(self.cost_of_positions(digits.double() / (categories - 1)).min())
            for digits in _outcomes(variables, categories, torch.device("cpu"))
        )


def _outcomes(variables: int, categories: int, device: torch.device) -> Iterator[Tensor]:
    """Every joint outcome of D variables with K categories as its digits ``[M, D]`` (int64,
    counting order), :data:`_OUTCOMES_PER_PASS` at a time, which bounds the memory."""
    radix = categories ** torch.arange(variables - 1, -1, -1, device=device)
    outcomes = categories**variables
    for start in range(0, outcomes, _OUTCOMES_PER_PASS):
        codes = torch.arange(start, min(start + _OUTCOMES_PER_PASS, outcomes), device=device)
        yield (codes.unsqueeze(-1) // radix) % categories
