"""Student's t distribution: two-sided tail probabilities and quantiles, from scipy.special.

P(|T_ν| > t) = 2·stdtr(ν, −|t|) and the quantile stdtrit(ν, p), the normal law (ndtr, ndtri)
for infinite degrees of freedom. ``scipy.special`` rather than ``scipy.stats``: the same
functions at a third of the import time, and imported on first use (0.1 s that ``gradbench
list`` need not pay). Scalar quantiles are cached: a run asks for the same few for every pair.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor


def two_sided_p(t: float, df: float = math.inf) -> float:
    """P(|T| > |t|) for T ~ Student's t with ``df`` degrees of freedom (normal if infinite)."""
    from scipy import special

    if math.isnan(t) or math.isnan(df):
        return math.nan
    tail = special.ndtr(-abs(t)) if math.isinf(df) else special.stdtr(df, -abs(t))
    return float(2 * tail)


@lru_cache(maxsize=256)
def quantile(probability: float, df: float = math.inf) -> float:
    """The t with P(T ≤ t) = ``probability``, for ½ ≤ probability < 1."""
    if not 0.5 <= probability < 1:
        raise ValueError(f"probability must be in [0.5, 1), got {probability}")
    from scipy import special

    if math.isinf(df):
        return float(special.ndtri(probability))
    return float(special.stdtrit(df, probability))


def quantiles(probability: float, df: Tensor) -> Tensor:
    """The quantile of :func:`quantile` for each of the degrees of freedom ``df`` (a CPU
    float64 tensor, finite entries), in one call."""
    from scipy import special

    return torch.from_numpy(special.stdtrit(df.numpy(), probability))
