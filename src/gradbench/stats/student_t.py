"""Student's t distribution: two-sided tail probabilities and quantiles, from scipy.

Infinite degrees of freedom mean the normal law. Quantiles are cached: a run asks for the same
few (95% intervals on 63 degrees of freedom) for every pair.
"""

from __future__ import annotations

import math
from functools import lru_cache

from scipy import stats


def two_sided_p(t: float, df: float = math.inf) -> float:
    """P(|T| > |t|) for T ~ Student's t with ``df`` degrees of freedom (normal if infinite)."""
    if math.isnan(t) or math.isnan(df):
        return math.nan
    law = stats.norm if math.isinf(df) else stats.t(df)
    return float(2 * law.sf(abs(t)))


@lru_cache(maxsize=256)
def quantile(probability: float, df: float = math.inf) -> float:
    """The t with P(T ≤ t) = ``probability``, for ½ ≤ probability < 1."""
    if not 0.5 <= probability < 1:
        raise ValueError(f"probability must be in [0.5, 1), got {probability}")
    law = stats.norm if math.isinf(df) else stats.t(df)
    return float(law.ppf(probability))
