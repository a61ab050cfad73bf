"""K-sample importance-weighted bounds (IWAE; Burda, Grosse & Salakhutdinov 2016) as objectives.

For a model p_θ(x, z) and a proposal q_θ(z | x), with K particles z_1 … z_K ~ q_θ,

    J(θ) = E[log (1/K) Σ_k w_k],   w_k = p_θ(x, z_k) / q_θ(z_k | x),

a lower bound on log p_θ(x) that tightens as K grows; K = 1 is the ELBO with its entropy term
sampled. One draw z is the K particles (``[K, d]``, ``[K]``); the cost is the bound of the draw
(:func:`~gradbench.core.importance_weights.bound`) and depends on θ through both densities, so
``reparam`` on these objectives is the IWAE pathwise gradient and ``reinforce`` the IWAE
score-function gradient, and ``stl``, ``dreg`` and ``vimco`` change which factors of w carry θ
(:mod:`gradbench.estimators.importance_weighted`). J is maximised.

* ``iwae-linear-gaussian``: p(z) = N(μ, I), p(x | z) = N(z, I) in d dimensions, one data point
  x, and q(z) = N(m, diag s²); θ = (``mu``, ``loc``, ``scale``) = (μ, m, s): the model's
  parameter and the proposal's. The posterior is N((μ + x)/2, I/2) and log p(x) =
  log N(x; μ, 2I), so at m = (μ + x)/2, s = 1/√2 every weight equals p(x) and the bound is
  log p(x) for every K (the Gaussian model of Rainforth et al. 2018 and Tucker et al. 2019, one
  data point). The reference is exact by Gauss–Hermite quadrature over the K·d noise
  coordinates where K·d ≤ :data:`QUADRATURE_DIMENSIONS` (scipy's ``roots_hermitenorm``, a
  product grid of at most 2²⁰ points), and estimated by the engine beyond.
* ``iwae-discrete``: z ∈ {0, …, C − 1}, p(z) = softmax(π), p(x | z) = N(x; z, 1), q(z) =
  softmax(ℓ); θ = (``prior_logits``, ``logits``) = (π, ℓ). Particles are drawn by inversion of
  q's cumulative probabilities from uniforms; the reference is exact by enumeration of the C^K
  particle states where C^K ≤ :data:`ENUMERATION_STATES`, and estimated beyond.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal, constraints
from torch.distributions.constraints import Constraint

from gradbench.core.importance_weights import bound, term_bounds
from gradbench.core.objective import Capability, Objective, flat_gradient
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least, positive
from gradbench.core.shapes import broadcast_shape

#: Noise coordinates K·d up to which ``iwae-linear-gaussian`` integrates J by quadrature.
QUADRATURE_DIMENSIONS = 4
#: Points of the quadrature's product grid at most.
QUADRATURE_POINTS = 2**20
#: Nodes per block of the quadrature's sum (:meth:`LinearGaussianBound.expected_cost`).
QUADRATURE_BLOCK = 2**13
#: Particle states C^K up to which ``iwae-discrete`` sums J exactly.
ENUMERATION_STATES = 2**20

PARTICLES = Setting(
    "particles", int, 4, "K, the importance samples in each term of the bound", at_least(1)
)


#: Scalars one cost evaluation of a bound holds per log-weight log w_tk beyond the particles'
#: coordinates, in units of the chunk plan's elements (each counted with its temporaries).
LOG_WEIGHT_TEMPORARIES = 2


class ImportanceWeightedBound(Objective):
    """J(θ) = E[(1/T) Σ_t log (1/K) Σ_k w_tk]; subclasses give the sampler of the K particles,
    log p_θ(x, z) and log q_θ(z | x) (see :attr:`Capability.IMPORTANCE_WEIGHTS`)."""

    maximize = True
    offers = frozenset({Capability.COMMON_NOISE, Capability.IMPORTANCE_WEIGHTS})
    #: The dims T of independent terms (data points) before the particles in the log-weights.
    term_dims: ClassVar[int] = 0

    def particles(self) -> int:
        return int(self.setting("particles"))

    def elements_per_evaluation(self, params: Params) -> int:
        """One draw and θ, and :data:`LOG_WEIGHT_TEMPORARIES` scalars per log-weight (the
        draw's leading ``[T..., K]``): the three log densities of each particle, their
        difference and the log-sum-exp's shifted exponentials, which autograd keeps. Without
        them a chunk outgrew its plan 2.1× at K = 16, d = 1 (1289 bytes per evaluation held,
        608 planned; ``docs/performance.md``)."""
        event = self.distribution(params).event_shape
        log_weights = math.prod(event[: self.term_dims + 1])
        return super().elements_per_evaluation(params) + LOG_WEIGHT_TEMPORARIES * log_weights

    def log_weights(self, z: Tensor, params: Params) -> Tensor:
        """log w = log p_θ(x, z) − log q_θ(z | x), ``[*S, T..., K]``."""
        return self.log_joint(z, params) - self.log_proposal(z, params)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        log_weights = self.log_weights(x, params)
        return bound(log_weights, log_weights.dim() - self.term_dims - 1)

    def cost_terms(self, x: Tensor, params: Params) -> Tensor | None:
        """Each term's bound log (1/K) Σ_k w_tk ``[*S, T]`` where there are T terms."""
        if self.term_dims == 0:
            return None
        return term_bounds(self.log_weights(x, params)).flatten(-self.term_dims)

    @abstractmethod
    def log_joint(self, z: Tensor, params: Params) -> Tensor:
        """log p_θ(x_t, z_tk), ``[*S, T..., K]``."""

    @abstractmethod
    def log_proposal(self, z: Tensor, params: Params) -> Tensor:
        """log q_θ(z_tk | x_t), ``[*S, T..., K]``."""


class LinearGaussianBound(ImportanceWeightedBound):
    """The K-sample bound of p(z) = N(μ, I), p(x | z) = N(z, I) with q(z) = N(m, diag s²);
    θ = ``mu``, ``loc``, ``scale``, each ``[d]``; particles z = m + s ⊙ ε ``[K, d]``."""

    name = "iwae-linear-gaussian"
    description = "K-sample bound, p(z) = N(μ, I), p(x|z) = N(z, I), q = N(m, s²)"
    reference_method = "exact (Gauss–Hermite quadrature)"
    offers = ImportanceWeightedBound.offers | {Capability.NOISE_BY_INVERSION}
    has_rsample = True
    settings = (
        PARTICLES,
        Setting("dim", int, 1, "latent dimensions d", at_least(1)),
        Setting("x", float, 1.0, "the observation x, every coordinate"),
        Setting("mu", float, 0.0, "prior mean μ, every coordinate"),
        Setting("loc", float, 0.0, "q's mean m (the posterior's is (μ + x)/2)"),
        Setting("scale", float, 1.0, "q's standard deviation s (the posterior's: 1/√2)", positive),
    )

    def parameters(self) -> Params:
        dim = int(self.setting("dim"))
        return {
            name: torch.full((dim,), self.setting(name), dtype=torch.float64)
            for name in ("mu", "loc", "scale")
        }

    def constraints(self) -> dict[str, Constraint]:
        return {"scale": constraints.positive}

    def gives_reference(self) -> bool:
        """Quadrature where K·d ≤ :data:`QUADRATURE_DIMENSIONS`; the engine estimates beyond."""
        return self._noise_dimensions() <= QUADRATURE_DIMENSIONS

    def _noise_dimensions(self) -> int:
        return self.particles() * int(self.setting("dim"))

    def optimal_value(self) -> float:
        """max over θ of log p(x) = d · (−½ log 4π), at μ = x with q the posterior."""
        return -0.5 * self.setting("dim") * math.log(4 * math.pi)

    def distribution(self, params: Params) -> Distribution:
        loc, scale = (params[k].unsqueeze(-2) for k in ("loc", "scale"))
        shape = (*loc.shape[:-2], self.particles(), loc.shape[-1])
        normal = Normal(loc.expand(shape), scale.expand(shape), validate_args=False)
        return Independent(normal, 2, validate_args=False)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        loc = params["loc"]
        shape = (n, self.particles(), loc.shape[-1])
        return torch.randn(shape, generator=generator, dtype=loc.dtype, device=generator.device)

    def noise_from_uniforms(self, uniforms: Tensor, params: Params) -> Tensor:
        """ε = Φ⁻¹(u)."""
        return torch.special.ndtri(uniforms)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return params["loc"].unsqueeze(-2) + params["scale"].unsqueeze(-2) * noise

    def log_joint(self, z: Tensor, params: Params) -> Tensor:
        """log N(z; μ, I) + log N(x; z, I), summed over the d coordinates."""
        prior = Normal(params["mu"].unsqueeze(-2), 1.0, validate_args=False).log_prob(z)
        likelihood = Normal(z, 1.0, validate_args=False).log_prob(
            torch.full_like(z, self.setting("x"))
        )
        return (prior + likelihood).sum(-1)

    def log_proposal(self, z: Tensor, params: Params) -> Tensor:
        loc, scale = (params[k].unsqueeze(-2) for k in ("loc", "scale"))
        return Normal(loc, scale, validate_args=False).log_prob(z).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        """J by Gauss–Hermite quadrature over the K·d standard-normal noise coordinates: a
        product grid of m nodes per coordinate, m^{K·d} ≤ :data:`QUADRATURE_POINTS`, summed in
        blocks of :data:`QUADRATURE_BLOCK` nodes (differentiable; :meth:`exact_gradient`
        differentiates it block by block)."""
        return torch.stack([self._block_cost(block, params) for block in self._grid()]).sum()

    def exact_gradient(self, params: Params) -> Tensor:
        """∇_θ J, the sum of each block's gradient, so that autograd holds one block's
        intermediates at a time (about 4 MB; the whole grid's were 480 MB)."""
        return sum(
            flat_gradient(lambda theta, block=block: self._block_cost(block, theta), params)
            for block in self._grid()
        )

    def _grid(self) -> Iterator[tuple[Tensor, Tensor]]:
        dimensions = self._noise_dimensions()
        if dimensions > QUADRATURE_DIMENSIONS:
            raise NotImplementedError(
                f"{self.name}: no quadrature for K·d = {dimensions} > {QUADRATURE_DIMENSIONS}"
            )
        return gauss_hermite_blocks(dimensions, QUADRATURE_POINTS, QUADRATURE_BLOCK)

    def _block_cost(self, block: tuple[Tensor, Tensor], params: Params) -> Tensor:
        """Σ_j w_j f(T(ε_j)) over one block of nodes ε_j ``[b, K·d]`` with weights ``[b]``."""
        nodes, weights = (part.to(params["loc"]) for part in block)
        noise = nodes.reshape(-1, self.particles(), params["loc"].shape[-1])
        return (weights * self.cost(self.transform(noise, params), params)).sum()


def gauss_hermite_blocks(
    dimensions: int, max_points: int, block: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """A product Gauss–Hermite rule for E[g(ε)], ε ~ N(0, I_D), in blocks of ``block`` nodes:
    nodes ``[b, D]`` and weights ``[b]`` (float64; all the weights sum to 1), m = min(64,
    ⌊max_points^{1/D}⌋) nodes per coordinate (exact for polynomials of degree ≤ 2m − 1 in each
    coordinate), the m^D grid points in the order of ``torch.cartesian_prod`` (the last
    coordinate fastest), each block built from its points' indices, never the whole grid."""
    from scipy.special import roots_hermitenorm  # on first use, not for `gradbench list`

    per_axis = min(64, int(max_points ** (1 / dimensions) + 1e-9))
    nodes, weights = roots_hermitenorm(per_axis)
    axis_nodes = torch.as_tensor(nodes, dtype=torch.float64)
    axis_weights = torch.as_tensor(weights / weights.sum(), dtype=torch.float64)
    place = per_axis ** torch.arange(dimensions - 1, -1, -1)  # the value of each digit
    points = per_axis**dimensions
    for start in range(0, points, block):
        digits = torch.arange(start, min(start + block, points)).unsqueeze(1) // place % per_axis
        yield axis_nodes[digits], axis_weights[digits].prod(1)


class DiscreteBound(ImportanceWeightedBound):
    """The K-sample bound of p(z) = softmax(π), p(x | z) = N(x; z, 1) over z ∈ {0, …, C − 1}
    with q(z) = softmax(ℓ); θ = ``prior_logits``, ``logits``, each ``[C]``; particles are the
    category indices ``[K]`` (in θ's dtype)."""

    name = "iwae-discrete"
    description = "K-sample bound, z ∈ {0..C−1}, p(x|z) = N(x; z, 1), q = softmax(ℓ)"
    reference_method = "exact (enumeration)"
    differentiable_cost = False
    has_rsample = False
    settings = (
        PARTICLES,
        Setting("categories", int, 4, "C, the latent's values 0 … C − 1", at_least(2)),
        Setting("x", float, 2.5, "the observation x"),
        Setting("spread", float, 1.0, "q's logits at start: evenly over [−spread, spread]"),
    )

    def parameters(self) -> Params:
        categories = int(self.setting("categories"))
        spread = self.setting("spread")
        return {
            "prior_logits": torch.zeros(categories, dtype=torch.float64),
            "logits": torch.linspace(-spread, spread, categories, dtype=torch.float64),
        }

    def gives_reference(self) -> bool:
        """Enumeration where C^K ≤ :data:`ENUMERATION_STATES`; the engine estimates beyond."""
        return self._states() <= ENUMERATION_STATES

    def _states(self) -> int:
        return int(self.setting("categories")) ** self.particles()

    def distribution(self, params: Params) -> Distribution:
        logits = params["logits"].unsqueeze(-2)
        shape = (*logits.shape[:-2], self.particles(), logits.shape[-1])
        return Independent(
            Categorical(logits=logits.expand(shape), validate_args=False), 1, validate_args=False
        )

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        logits = params["logits"]
        shape = (n, self.particles())
        return torch.rand(shape, generator=generator, dtype=logits.dtype, device=generator.device)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        """z = #{c : ε > F_c}, F the cumulative probabilities of q."""
        cumulative = torch.softmax(params["logits"], dim=-1).cumsum(-1).unsqueeze(-2)
        index = (noise.unsqueeze(-1) > cumulative).sum(-1)
        return index.clamp(max=cumulative.shape[-1] - 1).to(noise.dtype)

    def log_joint(self, z: Tensor, params: Params) -> Tensor:
        """log softmax(π)_z + log N(x; z, 1)."""
        prior = _log_probability(params["prior_logits"], z)
        likelihood = Normal(z, 1.0, validate_args=False).log_prob(
            torch.full_like(z, self.setting("x"))
        )
        return prior + likelihood

    def log_proposal(self, z: Tensor, params: Params) -> Tensor:
        return _log_probability(params["logits"], z)

    def expected_cost(self, params: Params) -> Tensor:
        """J = Σ over the C^K particle states of Π_k q(z_k) · log (1/K) Σ_k w_k."""
        states = self._states()
        if states > ENUMERATION_STATES:
            raise NotImplementedError(
                f"{self.name}: no enumeration for C^K = {states} > {ENUMERATION_STATES}"
            )
        logits = params["logits"]
        values = torch.arange(logits.shape[-1], dtype=logits.dtype)
        z = torch.cartesian_prod(*[values] * self.particles()).reshape(states, -1)
        probability = self.log_proposal(z, params).sum(-1).exp()
        return (probability * self.cost(z, params)).sum()


def _log_probability(logits: Tensor, z: Tensor) -> Tensor:
    """log softmax(logits)_z: logits ``[*B, C]``, indices z ``[*S, K]`` → ``[*S, K]``."""
    log_p = torch.log_softmax(logits, dim=-1).unsqueeze(-2)  # [*B, 1, C]
    shape = broadcast_shape(log_p.shape[:-1], z.shape)
    index = z.long().expand(shape).unsqueeze(-1)
    return log_p.expand(*shape, log_p.shape[-1]).gather(-1, index).squeeze(-1)
