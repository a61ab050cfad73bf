"""Gumbel and logistic noise for the discrete estimators: Gumbel-max draws and the draws of the
noise conditioned on the outcome it produced.

With G ~ Gumbel(0, 1) i.i.d. per category, x = onehot(argmax_k(ℓ_k + G_k)) is a draw of
OneHotCategorical(softmax(ℓ)) (the Gumbel-max trick), and z = ℓ + G its perturbed logits. Given
the outcome x = e_i, z is distributed as (Maddison, Tarlow & Minka 2014, "A* sampling")

    z_i = log Σ_k e^{ℓ_k} + G_i,          z_k = −log(e^{−(ℓ_k + G_k)} + e^{−z_i})  for k ≠ i,

with fresh Gumbels: the maximum is Gumbel with location log Σ e^ℓ, and every other coordinate is
a Gumbel truncated below it. For a Bernoulli logit ℓ the same holds with logistic noise
L = log u − log(1 − u): b = 1[ℓ + L > 0], and given b the uniform u is uniform on its side of
1 − sigmoid(ℓ) (Tucker et al. 2017, "REBAR", appendix). The conditional draws take their fresh
noise as an argument, so they stay differentiable in ℓ (REBAR's and RELAX's z̃); all draws
take uniforms from the run's generator, in θ's dtype and on its device.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import softplus


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


def conditional_gumbel(logits: Tensor, x: Tensor, fresh: Tensor) -> Tensor:
    """Perturbed logits z̃ ~ (ℓ + G | argmax(ℓ + G) = x) from fresh Gumbels G′ (the module
    docstring's formula): logits ``[*V, K]`` (or batched), one-hot x and G′ ``[*S, *V, K]``.
    Differentiable in ℓ for fixed G′, through the truncation too (REBAR, RELAX); detach ℓ for
    the noise alone (Gumbel-Rao)."""
    top = torch.logsumexp(logits, dim=-1, keepdim=True) + (fresh * x).sum(-1, keepdim=True)
    below = -torch.logaddexp(-(logits + fresh), -top)
    return torch.where(x.bool(), top, below)


def logistic(u: Tensor) -> Tensor:
    """Logistic noise L = log u − log(1 − u) from uniforms."""
    return torch.log(u) - torch.log1p(-u)


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 − eˣ) for x < 0."""
    return torch.log(-torch.expm1(x))


def conditional_logistic(logits: Tensor, b: Tensor, fresh: Tensor) -> Tensor:
    """Logistic noise L̃ ~ (L | 1[ℓ + L > 0] = b) from fresh logistic noise L′ = log v −
    log(1 − v), all three broadcast together; differentiable in ℓ for fixed L′.

    With p = sigmoid(ℓ), the uniform behind L̃ is u = 1 − p(1 − v) where b = 1 and
    u = v(1 − p) where b = 0 (uniform on its side of 1 − p); L̃ = log u − log(1 − u) is
    computed from log p, log(1 − p), log v and log(1 − v), so it stays finite where u itself
    would round to 0 or 1 (float32, v at its largest draw)."""
    log_p, log_not_p = -softplus(-logits), -softplus(logits)  # log sigmoid(±ℓ)
    log_v, log_not_v = -softplus(-fresh), -softplus(fresh)
    log_not_u_above = log_p + log_not_v  # log(1 − u) where b = 1
    log_u_below = log_v + log_not_p  # log u where b = 0
    above = _log1mexp(log_not_u_above) - log_not_u_above
    below = log_u_below - _log1mexp(log_u_below)
    return torch.where(b.bool(), above, below)
