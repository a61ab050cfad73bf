"""The K-sample importance-weighted bound and its normalised weights (Burda, Grosse &
Salakhutdinov 2016, "Importance Weighted Autoencoders").

For T independent terms (data points) with K particles z_t1 … z_tK ~ q_θ(· | x_t) each, and
log-weights ``log_weights`` ``[*S, T..., K]`` (the particles last),

    L(z) = (1/T) Σ_t log (1/K) Σ_k w_tk,     w̃_tk = w_tk / Σ_j w_tj,

computed in log space (logsumexp), so weights that differ by hundreds of nats stay exact.
L is the cost of :attr:`~gradbench.core.objective.Capability.IMPORTANCE_WEIGHTS` objectives;
K = 1 is the ELBO with a sampled entropy term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def bound(log_weights: Tensor, sample_dims: int = 1) -> Tensor:
    """L for each draw: logmeanexp over the particles, mean over the terms:
    ``[*S, T..., K]`` → ``[*S]`` with S the first ``sample_dims`` dims."""
    return mean_over_terms(term_bounds(log_weights), sample_dims)


def term_bounds(log_weights: Tensor) -> Tensor:
    """log (1/K) Σ_k w_tk for each term: ``[*S, T..., K]`` → ``[*S, T...]``."""
    return torch.logsumexp(log_weights, dim=-1) - math.log(log_weights.shape[-1])


def normalized_weights(log_weights: Tensor) -> Tensor:
    """w̃_tk = w_tk / Σ_j w_tj, ``[*S, T..., K]`` (a softmax over the particles)."""
    return torch.softmax(log_weights, dim=-1)


def mean_over_terms(values: Tensor, sample_dims: int = 1) -> Tensor:
    """(1/T) Σ_t of per-term values ``[*S, T...]`` → ``[*S]``; the identity without T dims."""
    return values.flatten(sample_dims).mean(-1) if values.dim() > sample_dims else values
