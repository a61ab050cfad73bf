"""K-sample importance-weighted bounds (IWAE; Burda, Grosse & Salakhutdinov 2016, "Importance
Weighted Autoencoders") of the digits VAEs.

The model and proposal of :mod:`.vae`: the first B digits x_b, the fixed pretrained decoder
p(x | z), the prior p(z) and the encoder's q_φ(z | x), θ = φ (the encoder's weights, as in
``vae-gaussian`` and ``vae-bernoulli``, with the same shipped weights). With K particles
z_b1 … z_bK ~ q_φ(· | x_b) for each image,

    J(φ) = (1/B) Σ_b E[log (1/K) Σ_k w_bk],
    log w_bk = log p(x_b | z_bk) + log p(z_bk) − log q_φ(z_bk | x_b),

a lower bound on (1/B) Σ_b log p(x_b) that grows with K (Burda et al., Theorem 1); at K = 1 it
is the matching ELBO, with its KL term sampled instead of analytic. The images are the T = B
independent terms of :class:`~.importance_weighted.ImportanceWeightedBound` (``term_dims`` = 1).
Shapes: one draw z is ``[B, K, L]``; :meth:`log_joint` and :meth:`log_proposal` are
``[*S, B, K]``, the decoder reading the K codes of each image against it, ``[B, 1, 64]``; the
cost (the bound) is ``[*S]`` and :meth:`cost_terms` the per-image bounds ``[*S, B]``. The cost
depends on φ through log q, so ``reparam`` is the IWAE pathwise gradient and ``reinforce`` the
IWAE score-function gradient; ``stl``, ``dreg`` and ``vimco`` apply too
(:mod:`gradbench.estimators.importance_weighted`). J is maximised.

* ``iwae-vae-gaussian``: q = N(m_φ(x), diag s_φ(x)²), L = 4, prior N(0, I); z = m + s ⊙ ε with
  ε = Φ⁻¹(u) standard normal, reparameterized.
* ``iwae-vae-bernoulli``: q = Π Bernoulli(sigmoid(ℓ_φ(x))), L = 8, prior Bernoulli(½)^L;
  z = 1[ε < sigmoid(ℓ)] from uniforms ε, no pathwise gradient. It does not offer the Bernoulli
  structure (``Capability.BERNOULLI``): that structure promises a cost free of θ, and the
  estimators built on it (ARM, DisARM, REBAR, ...) would drop the ∂_φ log q part of the cost.

Neither has a closed form: the engine estimates the reference
(:mod:`gradbench.engine.reference`; ``reparam`` for the Gaussian latent, ``rloo`` for the binary
one). ``batch`` defaults to 8 images, not the ELBOs' 32: an evaluation runs the decoder on B·K
codes, so at the default K = 4 an estimate costs what one of ``vae-gaussian`` does, and a sweep
to K = 64 costs 16 times that rather than 64.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import replace

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from gradbench.core.objective import Capability
from gradbench.core.params import Params
from gradbench.objectives.importance_weighted import PARTICLES, ImportanceWeightedBound
from gradbench.objectives.vae import BATCH, BernoulliLatent, DigitsVAE, GaussianLatent

#: Images of a bound by default: B·K decoder evaluations stay those of an ELBO at K = 4.
BOUND_BATCH = replace(BATCH, default=8)


class _VAEBound(ImportanceWeightedBound, DigitsVAE):
    """The K-sample bound of a digits VAE: the images are the terms; subclasses give q_φ of one
    particle, its sampler and the prior."""

    settings = (BOUND_BATCH, PARTICLES)
    term_dims = 1
    #: Minutes in a bare ``gradbench compare``: most of it the estimated references of the
    #: least noisy estimators (dreg, vimco), sized to their runs; they run when named.
    in_default_suite = False

    @abstractmethod
    def proposal(self, params: Params) -> Distribution:
        """q_φ(z | x_b) of one particle, coordinatewise: batch shape ``[*Bθ, B, 1, L]``."""

    @abstractmethod
    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z_bk) for codes ``[*S, B, K, L]`` → ``[*S, B, K]``."""

    def distribution(self, params: Params) -> Distribution:
        """The K particles of every image: event ``[B, K, L]``."""
        one = self.proposal(params)
        shape = (*one.batch_shape[:-2], self.particles(), self.latent)
        return Independent(one.expand(shape), 3, validate_args=False)

    def log_joint(self, z: Tensor, params: Params) -> Tensor:
        """log p(x_b | z_bk) + log p(z_bk); the model is fixed, so free of θ."""
        return self.log_likelihood(z, particle_dims=1) + self.log_prior(z)

    def log_proposal(self, z: Tensor, params: Params) -> Tensor:
        return self.proposal(params).log_prob(z).sum(-1)

    def noise_shape(self, n: int) -> tuple[int, ...]:
        """``[n, B, K, L]``: one noise coordinate per coordinate of every particle."""
        return (n, int(self.setting("batch")), self.particles(), self.latent)

    def elements_per_evaluation(self, params: Params) -> int:
        """One draw and θ, the encoder's activations of each image, and the decoder's and the
        pixels for each of its K particles."""
        return super().elements_per_evaluation(params) + self.network_elements(self.particles())


class GaussianVAEBound(GaussianLatent, _VAEBound):
    """The K-sample bound of ``vae-gaussian``'s model and encoder; particles z = m + s ⊙ ε."""

    name = "iwae-vae-gaussian"
    description = "K-sample bound (IWAE) of the Gaussian digits VAE, ∇ w.r.t. encoder weights"
    offers = _VAEBound.offers | {Capability.NOISE_BY_INVERSION}

    def proposal(self, params: Params) -> Distribution:
        mean, scale = self.posterior(params)
        return Normal(mean.unsqueeze(-2), scale.unsqueeze(-2), validate_args=False)

    def log_prior(self, z: Tensor) -> Tensor:
        """log N(z; 0, I)."""
        return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        dtype = next(iter(params.values())).dtype
        return torch.randn(
            self.noise_shape(n), generator=generator, dtype=dtype, device=generator.device
        )

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        mean, scale = self.posterior(params)
        return mean.unsqueeze(-2) + scale.unsqueeze(-2) * noise


class BernoulliVAEBound(BernoulliLatent, _VAEBound):
    """The K-sample bound of ``vae-bernoulli``'s model and encoder; particles
    z = 1[ε < sigmoid(ℓ_φ(x))]."""

    name = "iwae-vae-bernoulli"
    description = "K-sample bound (IWAE) of the binary digits VAE, ∇ w.r.t. encoder weights"
    differentiable_cost = False
    has_rsample = False

    def proposal(self, params: Params) -> Distribution:
        return Bernoulli(logits=self.encode(params).unsqueeze(-2), validate_args=False)

    def log_prior(self, z: Tensor) -> Tensor:
        """log Bernoulli(½)^L = −L log 2 for every code."""
        return torch.full_like(z[..., 0], -self.latent * math.log(2))

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        dtype = next(iter(params.values())).dtype
        return torch.rand(
            self.noise_shape(n), generator=generator, dtype=dtype, device=generator.device
        )

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return (noise < torch.sigmoid(self.encode(params)).unsqueeze(-2)).to(noise.dtype)
