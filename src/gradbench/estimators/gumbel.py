"""Gumbel and logistic noise for the discrete estimators: Gumbel-max draws and the draws of the
noise conditioned on the outcome it produced.

With G ~ Gumbel(0, 1) i.i.d. per category, x = onehot(argmax_k(ℓ_k + G_k)) is a draw of
OneHotCategorical(softmax(ℓ)) (the Gumbel-max trick), and z = ℓ + G its perturbed logits. Given
the outcome x = e_i, z is distributed as (Maddison, Tarlow & Minka 2014, "A* sampling")

    z_i = log Σ_k e^{ℓ_k} + G_i,          z_k = −log(e^{−(ℓ_k + G_k)} + e^{−z_i})  for k ≠ i,

with fresh Gumbels: the maximum is Gumbel with location log Σ e^ℓ, and every other coordinate is
a Gumbel truncated below it. For a Bernoulli logit ℓ the same holds with logistic noise
L = log u − log(1 − u): b = 1[ℓ + L > 0], and given b the uniform u is uniform on its side of
1 − sigmoid(ℓ) (Tucker et al. 2017, "REBAR", appendix). All draws take uniforms from the run's
generator, in θ's dtype and on its device.
"""

from __future__ import annotations

import torch
from torch import Tensor


def uniforms(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    """U(0, 1) draws of ``shape`` in ``like``'s dtype, kept off 0 and 1 (their logarithms stay
    finite): [tiny, 1 − ε/2] with the dtype's tiny and ε."""
    u = torch.rand(shape, generator=generator, dtype=like.dtype, device=generator.device)
    info = torch.finfo(like.dtype)
    return u.clamp(info.tiny, 1 - info.eps / 2)


def gumbels(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard Gumbel draws G = −log(−log u) of ``shape``."""
    return -torch.log(-torch.log(uniforms(shape, like, generator)))


def one_hot_argmax(scores: Tensor) -> Tensor:
    """The one-hot of the largest score along the last dim, in the scores' dtype."""
    return torch.nn.functional.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)


def gumbel_max(logits: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n draws of Π OneHotCategorical(softmax(ℓ)) for logits ``[*V, K]``: the one-hot x and
    the perturbed logits z = ℓ + G, each ``[n, *V, K]`` and detached."""
    logits = logits.detach()
    perturbed = logits + gumbels((n, *logits.shape), logits, generator)
    return one_hot_argmax(perturbed), perturbed


def conditional_gumbel(logits: Tensor, x: Tensor, generator: torch.Generator) -> Tensor:
    """Perturbed logits z ~ (ℓ + G | argmax(ℓ + G) = x), detached: logits ``[*V, K]``, one-hot
    x ``[*S, *V, K]``, result ``[*S, *V, K]``; every draw makes its own Gumbels."""
    logits = logits.detach()
    fresh = gumbels(tuple(x.shape), logits, generator)
    top = torch.logsumexp(logits, dim=-1, keepdim=True) + (fresh * x).sum(-1, keepdim=True)
    below = -torch.logaddexp(-(logits + fresh), -top)
    return torch.where(x.bool(), top, below)


def logistic(u: Tensor) -> Tensor:
    """Logistic noise L = log u − log(1 − u) from uniforms."""
    return torch.log(u) - torch.log1p(-u)


def conditional_uniform(probability: Tensor, b: Tensor, v: Tensor) -> Tensor:
    """u ~ (U(0, 1) | 1[u > 1 − p] = b) from fresh uniforms v: u = (1 − p) + v p where b = 1,
    u = v (1 − p) where b = 0. Differentiable in p (REBAR's conditional relaxation)."""
    return torch.where(b.bool(), (1 - probability) + v * probability, v * (1 - probability))
