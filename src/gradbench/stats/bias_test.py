"""The bias test: is ḡ − g* distinguishable from zero?

Per coordinate z_j = |b_j| / se_j; the table's ``bias_p`` is the largest z's two-sided Student t
tail, Bonferroni-corrected over the P coordinates. The standard error has a rounding floor
(:func:`bias_z`), so a coordinate exact up to its dtype's rounding is not called biased. Where
g* is itself an estimate with standard error r_j on ν_r degrees of freedom, the standard error
of b_j is √(s_j²/N + r_j²), so a bias within the reference's own error is not distinguishable,
and the t tail takes the Welch–Satterthwaite degrees of freedom of that sum, the smallest over
the coordinates (conservative): ν_j = (a + b)² / (a²/(N − 1) + b²/ν_r), a = s_j²/N, b = r_j².
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The rounding floor of a bias's standard error, in machine epsilons relative to max |g*|.
ROUNDING_EPSILONS = 1000


def bias_z(bias: Tensor, bias_se: Tensor, reference: Tensor, eps: float) -> Tensor:
    """|b_j| / √(se_j² + δ²) per coordinate ``[P]``, δ the rounding floor.

    δ = 1000 ε · max_j |g*_j| (ε of the estimates' dtype; absolute when g* = 0): a coordinate
    that is exact up to rounding (its estimates barely vary) is not called biased for its last
    bits. With sampling noise δ is negligible (2e-13 relative in float64).
    """
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    floor = ROUNDING_EPSILONS * eps * (scale if scale > 0 else 1.0)
    return bias.abs() / torch.sqrt(bias_se**2 + floor**2)


def welch_degrees_of_freedom(
    run_error: Tensor, run_df: int, reference_error: Tensor, reference_df: float
) -> float:
    """The smallest Welch–Satterthwaite ν_j of a + b over the coordinates where a + b > 0
    (a = ``run_error``, b = ``reference_error``, squared standard errors ``[P]``)."""
    total = run_error + reference_error
    usable = total > 0
    if not bool(usable.any()) or run_df < 1:
        return float(max(run_df, 0))
    spread = run_error**2 / run_df + reference_error**2 / reference_df
    return float((total[usable] ** 2 / spread[usable]).min())
