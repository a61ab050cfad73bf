"""Variational autoencoders on the 8×8 digits: the gradient of the ELBO with respect to the
encoder's weights, with a Gaussian, a binary or a categorical latent.

Data: the first ``batch`` images of :func:`~gradbench.objectives.datasets.binary_digits`
(binary pixels x ∈ {0, 1}^64). Networks (:func:`build_networks`, tanh MLPs with 32 hidden
units): the encoder maps x to the parameters of q_φ(z | x), the decoder maps z (flattened) to
the logits of p(x | z) = Π Bernoulli(pixels). θ = φ, the encoder's weights (``hidden.weight``
``[32, 64]``, ``hidden.bias``, ``output.weight``, ``output.bias``); the decoder is fixed. The
objective is the ELBO per image,

    J(φ) = (1/B) Σ_b E_{q_φ(z_b | x_b)}[log p(x_b | z_b)] − KL(q_φ(z_b | x_b) ‖ p(z_b)),

with the reconstruction term as the cost (free of φ) and the KL, analytic for every latent, as
the analytic term whose exact gradient the engine adds to every estimate. One sample is one
z per image: the event is ``[B, L]`` (``[B, L, K]`` for the categorical latent).

* ``vae-gaussian``: L = 4, q = N(m_φ(x), diag s_φ(x)²) with s = softplus, prior N(0, I), drawn
  z = m + s ⊙ ε from standard-normal noise ε = Φ⁻¹(u) (so quasi-random u can replace the
  draws: ``NOISE_BY_INVERSION``). The expectation has no closed form and the class defines
  none, so the engine **estimates** the reference (:mod:`gradbench.engine.reference`): pathwise
  gradients in float64 on their own seed stream, their standard error from independent blocks,
  sized to each run; the bias test adds that error to the run's (:mod:`gradbench.stats.summary`).
* ``vae-bernoulli``: L = 8, q = Π Bernoulli(sigmoid(ℓ_φ(x))), prior Bernoulli(½)^L — the setting
  of the REBAR, RELAX and DisARM papers in miniature. The reference is **exact**: each image's
  expectation is a sum over the 2⁸ latent states.
* ``vae-categorical``: L = 4 variables of K = 4 categories, q = Π_l OneHotCategorical(
  softmax(ℓ_φ,l(x))), prior uniform over the K categories — the setting of the Gumbel-Rao
  (Paulus et al. 2021) and ReinMax (Liu et al. 2023) papers in miniature. The decoder reads the
  one-hot code flattened, ``[*, B, L·K]``. The reference is **exact**: a sum over the
  K^L = 256 latent states of each image, as many as the binary latent's.

Both discrete latents are sampled from uniforms ε ``[n, B, L]`` (z = 1[ε < p] for a bit, the
category by inversion of the cumulative probabilities for a categorical), and their decoders
also accept relaxed codes, in [0, 1] or on each variable's simplex: the relaxed cost is the
decoder's log-likelihood at the relaxed code.

**Shared parts.** :class:`DigitsVAE` holds what does not depend on the objective built on the
model: the images, the networks with their weights and the decoder's log-likelihood (which also
reads several codes per image, ``[*S, B, K, D]`` against the images ``[B, 1, 64]``);
:class:`GaussianLatent` and :class:`BernoulliLatent` name each latent's networks. The ELBOs
here and the K-sample bounds of :mod:`.vae_bounds` are built on them.

**Weights.** The VAEs were pre-trained once, deterministically, by :mod:`.pretraining`
(``python -m gradbench.objectives.pretraining`` rewrites the shipped files,
``gradbench/objectives/pretrained/*.pt``); the point where gradients are measured is those
weights, so every run sees the same network.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal, OneHotCategorical
from torch.func import functional_call

from gradbench.core.device_copies import on_device_of
from gradbench.core.errors import InputError
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least
from gradbench.objectives.categorical import one_hot_by_inversion
from gradbench.objectives.datasets import binary_digits
from gradbench.objectives.networks import batched_call, module_parameters

HIDDEN = 32
PIXELS = 64


def build_networks(
    decoder_inputs: int, encoder_outputs: int
) -> tuple[nn.Sequential, nn.Sequential]:
    """The encoder 64 → 32 → ``encoder_outputs`` and the decoder ``decoder_inputs`` → 32 → 64
    (tanh)."""

    def mlp(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(
            OrderedDict(
                hidden=nn.Linear(inputs, HIDDEN), act=nn.Tanh(), output=nn.Linear(HIDDEN, outputs)
            )
        ).to(torch.float64)

    return mlp(PIXELS, encoder_outputs), mlp(decoder_inputs, PIXELS)


def log_likelihood(decoder: nn.Module, weights: Params, images: Tensor, z: Tensor) -> Tensor:
    """log p(x_b | z_b) for each image, the decoder holding ``weights``: z ``[*S, B, D]`` (D the
    decoder's inputs) → ``[*S, B]``."""
    logits = functional_call(decoder, weights, (z,))  # [*S, B, 64]
    pixels = -nn.functional.binary_cross_entropy_with_logits(
        logits, images.expand_as(logits), reduction="none"
    )
    return pixels.sum(-1)


def gaussian_posterior(output: Tensor, latent: int) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation (softplus) of q(z | x) from the encoder's output
    ``[..., 2L]``: each ``[..., L]``."""
    return output[..., :latent], nn.functional.softplus(output[..., latent:])


def gaussian_kl(mean: Tensor, scale: Tensor) -> Tensor:
    """KL(N(m, s²) ‖ N(0, I)) per image, ``[..., B, L]`` → ``[..., B]``."""
    return (0.5 * (mean**2 + scale**2 - 1) - torch.log(scale)).sum(-1)


def bernoulli_kl(logits: Tensor) -> Tensor:
    """KL(Bernoulli(sigmoid(ℓ)) ‖ Bernoulli(½)) per image, ``[..., B, L]`` → ``[..., B]``."""
    p = torch.sigmoid(logits)
    log_p, log_not_p = nn.functional.logsigmoid(logits), nn.functional.logsigmoid(-logits)
    return (p * log_p + (1 - p) * log_not_p + math.log(2)).sum(-1)


def categorical_kl(logits: Tensor) -> Tensor:
    """KL(Π_l OneHotCategorical(softmax(ℓ_l)) ‖ uniform over K) per image, ``[..., B, L, K]`` →
    ``[..., B]``: Σ_l (Σ_k p_lk log p_lk + log K)."""
    log_p = torch.log_softmax(logits, dim=-1)
    return ((log_p.exp() * log_p).sum(-1) + math.log(logits.shape[-1])).sum(-1)


def enumerated_log_likelihood(
    states: Tensor, log_q: Tensor, decoder: nn.Module, weights: Params, images: Tensor
) -> Tensor:
    """E_{q(z | x_b)}[log p(x_b | z)] for each image, exactly: Σ_s q(s | x_b) log p(x_b | s)
    over every latent state s, given as the decoder reads it, ``states`` ``[S, D]``, with its
    log-probability under each image's q, ``log_q`` ``[S, B]`` → ``[B]``."""
    z = states.unsqueeze(1).expand(-1, log_q.shape[1], -1)  # [S, B, D]
    return (log_q.exp() * log_likelihood(decoder, weights, images, z)).sum(0)


@dataclass(frozen=True)
class Pretrained:
    """The shipped networks: the encoder (its weights are θ) and the fixed decoder's weights."""

    encoder: nn.Module
    decoder: nn.Module
    encoder_weights: Params
    decoder_weights: Params


#: B, the images of an objective; the importance-weighted bounds choose another default.
BATCH = Setting("batch", int, 32, "images in the objective (the dataset's first B)", at_least(1))


class DigitsVAE(Objective):
    """The data, the networks with their shipped weights and the decoder's likelihood, shared by
    the ELBOs here and the importance-weighted bounds of :mod:`.vae_bounds`; θ = the encoder's
    weights. Subclasses name the latent: its size, the encoder's outputs, the decoder's inputs
    and the weights file."""

    settings = (BATCH,)
    default_samples = 2000
    latent: ClassVar[int]
    encoder_outputs: ClassVar[int]
    decoder_inputs: ClassVar[int]
    weights_file: ClassVar[str]

    def validate(self) -> None:
        available = binary_digits().shape[0]
        if self.setting("batch") > available:
            raise InputError(
                f"{self.name}: batch={int(self.setting('batch'))} is more than the"
                f" {available} images of the digits data"
            )

    @property
    def networks(self) -> Pretrained:
        return _pretrained(self.decoder_inputs, self.encoder_outputs, self.weights_file)

    def images(self, like: Tensor) -> Tensor:
        """The objective's images ``[B, 64]`` on ``like``'s device and dtype."""
        return on_device_of(_first_images(int(self.setting("batch"))), like)

    def encode(self, params: Params) -> Tensor:
        """The encoder's output for each image: ``[*Bθ, B, encoder_outputs]``."""
        images = self.images(next(iter(params.values())))
        return batched_call(self.networks.encoder, params, images)

    def log_likelihood(self, z: Tensor, particle_dims: int = 0) -> Tensor:
        """log p(x_b | z) under the fixed decoder for codes z ``[*S, B, *P, decoder_inputs]``,
        P the last ``particle_dims`` dims before the code (several codes of each image), →
        ``[*S, B, *P]``."""
        weights = {k: on_device_of(v, z) for k, v in self.networks.decoder_weights.items()}
        images = self.images(z)
        images = images.reshape(images.shape[0], *[1] * particle_dims, images.shape[-1])
        return log_likelihood(self.networks.decoder, weights, images, z)

    def parameters(self) -> Params:
        return {k: v.clone() for k, v in self.networks.encoder_weights.items()}

    def network_elements(self, codes_per_image: int = 1) -> int:
        """Scalars the networks hold for the B images in one evaluation: the encoder's
        activations (each layer's outputs, before and after tanh) once per image, and the
        decoder's and the pixels once per code, ``codes_per_image`` codes of each image."""

        def widths(network: nn.Module) -> int:
            return sum(m.out_features for m in network.modules() if isinstance(m, nn.Linear))

        encoder, decoder = self.networks.encoder, self.networks.decoder
        per_code = 2 * widths(decoder) + binary_digits().shape[1]
        return int(self.setting("batch")) * (2 * widths(encoder) + codes_per_image * per_code)


class GaussianLatent(DigitsVAE):
    """The Gaussian latent, L = 4: q_φ(z | x) = N(m_φ(x), diag s_φ(x)²) with s = softplus, prior
    N(0, I), drawn z = m + s ⊙ ε from standard-normal noise ε = Φ⁻¹(u)."""

    has_rsample = True
    latent = 4
    encoder_outputs = 2 * latent
    decoder_inputs = latent
    weights_file = "vae-gaussian.pt"

    def posterior(self, params: Params) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of q_φ(z | x), each ``[*Bθ, B, L]``."""
        return gaussian_posterior(self.encode(params), self.latent)

    def noise_from_uniforms(self, uniforms: Tensor, params: Params) -> Tensor:
        """ε = Φ⁻¹(u)."""
        return torch.special.ndtri(uniforms)


class BernoulliLatent(DigitsVAE):
    """The binary latent, L = 8: q_φ(z | x) = Π Bernoulli(sigmoid(ℓ_φ(x))), prior
    Bernoulli(½)^L, drawn z = 1[ε < sigmoid(ℓ)] from uniforms ε."""

    latent = 8
    encoder_outputs = latent
    decoder_inputs = latent
    weights_file = "vae-bernoulli.pt"


class _VariationalAutoencoder(DigitsVAE):
    """The ELBO's cost: the decoder's log-likelihood of one code per image; subclasses give
    q_φ, its sampler and its KL."""

    maximize = True  # the ELBO

    def cost(self, x: Tensor, params: Params) -> Tensor:
        return self.log_likelihood(x).mean(-1)

    def cost_terms(self, x: Tensor, params: Params) -> Tensor:
        """The B images' log p(x_b | z_b) ``[*S, B]``, each of its own image's latents."""
        return self.log_likelihood(x)

    def elements_per_evaluation(self, params: Params) -> int:
        """One draw and θ, and the networks' activations and the pixels of each image."""
        return super().elements_per_evaluation(params) + self.network_elements()


@cache
def _first_images(count: int) -> Tensor:
    """The first ``count`` binary digit images ``[count, 64]``, one tensor per count."""
    return binary_digits()[:count]


@cache
def _pretrained(decoder_inputs: int, encoder_outputs: int, weights_file: str) -> Pretrained:
    """The networks of a latent with the shipped weights, one copy per weights file."""
    encoder, decoder = build_networks(decoder_inputs, encoder_outputs)
    source = resources.files("gradbench.objectives") / "pretrained" / weights_file
    with resources.as_file(source) as path:
        state = torch.load(path, weights_only=True)
    encoder.load_state_dict(state["encoder"])
    decoder.load_state_dict(state["decoder"])
    return Pretrained(encoder, decoder, module_parameters(encoder), module_parameters(decoder))


class GaussianVAE(GaussianLatent, _VariationalAutoencoder):
    """ELBO of a VAE with Gaussian latents (L = 4); θ = encoder weights; no closed form, so the
    reference is estimated by the engine."""

    name = "vae-gaussian"
    description = "VAE on 8×8 digits, Gaussian latent, ∇ of the ELBO w.r.t. encoder weights"
    offers = frozenset({Capability.COMMON_NOISE, Capability.NOISE_BY_INVERSION})

    def distribution(self, params: Params) -> Distribution:
        mean, scale = self.posterior(params)
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        return Independent(Normal(mean, scale, validate_args=False), 2, validate_args=False)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        dtype = next(iter(params.values())).dtype
        shape = (n, int(self.setting("batch")), self.latent)
        return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        mean, scale = self.posterior(params)
        return mean + scale * noise

    def analytic_term(self, params: Params) -> Tensor:
        """−(1/B) Σ_b KL(N(m_b, s_b²) ‖ N(0, I))."""
        return -gaussian_kl(*self.posterior(params)).mean(-1)


class DiscreteVAE(_VariationalAutoencoder):
    """Shared by the discrete latents: uniforms ε ``[n, B, L]`` as the noise (z is a step
    function of θ at fixed ε, so there is no pathwise gradient), and the exact ELBO by
    enumerating the latent states of each image; subclasses give the states, their
    probabilities and the KL."""

    reference_method = "exact (enumeration)"
    differentiable_cost = False
    has_rsample = False

    @classmethod
    @abstractmethod
    def latent_states(cls, output: Tensor) -> tuple[Tensor, Tensor]:
        """From the encoder's output ``[B, encoder_outputs]``: every latent state as the decoder
        reads it, ``[S, decoder_inputs]``, and its log-probability under each image's q,
        ``[S, B]``."""

    @classmethod
    @abstractmethod
    def prior_kl(cls, output: Tensor) -> Tensor:
        """KL(q(z | x_b) ‖ p(z)) per image from the encoder's output: ``[..., B]``."""

    @classmethod
    def exact_elbo(
        cls, output: Tensor, decoder: nn.Module, weights: Params, images: Tensor
    ) -> Tensor:
        """The ELBO of each image, ``[B]``, from the encoder's output ``[B, encoder_outputs]``
        and the decoder holding ``weights``: the reconstruction term by enumeration."""
        states, log_q = cls.latent_states(output)
        reconstruction = enumerated_log_likelihood(states, log_q, decoder, weights, images)
        return reconstruction - cls.prior_kl(output)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        dtype = next(iter(params.values())).dtype
        shape = (n, int(self.setting("batch")), self.latent)
        return torch.rand(shape, generator=generator, dtype=dtype, device=generator.device)

    def analytic_term(self, params: Params) -> Tensor:
        """−(1/B) Σ_b KL(q(z_b | x_b) ‖ p(z_b))."""
        return -self.prior_kl(self.encode(params)).mean(-1)

    def expected_cost(self, params: Params) -> Tensor:
        """The exact ELBO: the reconstruction term by enumeration of the latent states, and the
        analytic KL."""
        output = self.encode(params)  # [B, encoder_outputs]
        weights = {k: on_device_of(v, output) for k, v in self.networks.decoder_weights.items()}
        return self.exact_elbo(output, self.networks.decoder, weights, self.images(output)).mean()


class BernoulliVAE(BernoulliLatent, DiscreteVAE):
    """ELBO of a VAE with binary latents (L = 8); θ = encoder weights; exact by enumeration.
    The relaxed cost is the decoder's log-likelihood at a code in [0, 1]^L."""

    name = "vae-bernoulli"
    description = "VAE on 8×8 digits, binary latent, ∇ of the ELBO w.r.t. encoder weights"
    offers = frozenset({Capability.COMMON_NOISE, Capability.BERNOULLI, Capability.RELAXED_COST})

    @classmethod
    def latent_states(cls, output: Tensor) -> tuple[Tensor, Tensor]:
        """The 2^L bit vectors ``[2^L, L]`` and log Π_l p_l^{z_l} (1 − p_l)^{1 − z_l}."""
        states = all_states(cls.latent, 2).to(output)  # [2^L, L]
        log_q = states @ nn.functional.logsigmoid(output).T + (1 - states) @ (
            nn.functional.logsigmoid(-output).T
        )  # [2^L, B]
        return states, log_q

    @classmethod
    def prior_kl(cls, output: Tensor) -> Tensor:
        """KL(Bernoulli(p_b) ‖ Bernoulli(½)), p = sigmoid(ℓ)."""
        return bernoulli_kl(output)

    def bernoulli_logits(self, params: Params) -> Tensor:
        return self.encode(params)

    def distribution(self, params: Params) -> Distribution:
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        bernoulli = Bernoulli(logits=self.encode(params), validate_args=False)
        return Independent(bernoulli, 2, validate_args=False)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return (noise < torch.sigmoid(self.encode(params))).to(noise.dtype)


class CategoricalVAE(DiscreteVAE):
    """ELBO of a VAE with categorical latents (L = 4 variables of K = 4 categories); θ = encoder
    weights; exact by enumeration of the K^L codes.

    q_φ(z | x) = Π_l OneHotCategorical(softmax(ℓ_l)), ℓ = the encoder's L·K outputs as ``[L, K]``
    logits; draws z_l = e_i by inversion of uniforms. The decoder reads z flattened,
    ``[*, B, L·K]``, so it also accepts relaxed codes, points of each variable's probability
    simplex (Gumbel-softmax, Gumbel-Rao): the relaxed cost is the decoder's log-likelihood at the
    relaxed code.
    """

    name = "vae-categorical"
    description = "VAE on 8×8 digits, categorical latent, ∇ of the ELBO w.r.t. encoder weights"
    offers = frozenset({Capability.COMMON_NOISE, Capability.CATEGORICAL, Capability.RELAXED_COST})
    latent = 4
    categories = 4
    encoder_outputs = latent * categories
    decoder_inputs = latent * categories
    weights_file = "vae-categorical.pt"

    @classmethod
    def logits_per_variable(cls, output: Tensor) -> Tensor:
        """The encoder's output ``[..., L·K]`` as the logits of each variable ``[..., L, K]``."""
        return output.unflatten(-1, (cls.latent, cls.categories))

    @classmethod
    def latent_states(cls, output: Tensor) -> tuple[Tensor, Tensor]:
        """The K^L one-hot codes flattened, ``[K^L, L·K]``, and log Π_l p_{l, z_l}."""
        digits = all_states(cls.latent, cls.categories)  # [K^L, L]
        states = nn.functional.one_hot(digits, cls.categories).flatten(1).to(output)
        log_p = torch.log_softmax(cls.logits_per_variable(output), dim=-1).flatten(-2)  # [B, L·K]
        return states, states @ log_p.T  # [K^L, B]

    @classmethod
    def prior_kl(cls, output: Tensor) -> Tensor:
        """KL(Π_l OneHotCategorical(p_l) ‖ uniform) = Σ_l (Σ_k p_lk log p_lk + log K)."""
        return categorical_kl(cls.logits_per_variable(output))

    def categorical_logits(self, params: Params) -> Tensor:
        return self.logits_per_variable(self.encode(params))

    def distribution(self, params: Params) -> Distribution:
        # Settings are validated once; per-call validation would sync a GPU on every chunk.
        one_hot = OneHotCategorical(logits=self.categorical_logits(params), validate_args=False)
        return Independent(one_hot, 2, validate_args=False)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        return one_hot_by_inversion(noise, self.categorical_logits(params))

    def log_likelihood(self, z: Tensor, particle_dims: int = 0) -> Tensor:
        """log p(x_b | z) for one-hot or relaxed codes z ``[*S, B, *P, L, K]`` →
        ``[*S, B, *P]``."""
        return super().log_likelihood(z.flatten(-2), particle_dims)


def all_states(width: int, base: int) -> Tensor:
    """Every vector of ``width`` digits in ``base``, ``[base^width, width]`` int64, in counting
    order (the first digit the most significant)."""
    codes = torch.arange(base**width).unsqueeze(1)
    return codes // base ** torch.arange(width - 1, -1, -1) % base
