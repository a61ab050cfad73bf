"""The variance interval: a delete-a-group jackknife of log V.

It makes no Gaussian assumption (Efron & Stein 1981; the log makes the interval positive and
absorbs the right skew of variance estimates under heavy tails):
V · exp(± t_{G−1, 0.975} · se_jack(log V)) over the G groups of the streaming moments.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradbench.stats import student_t

CONFIDENCE = 0.95


def jackknife_log_interval(
    estimate: Tensor, leave_out: Tensor, usable: Tensor
) -> tuple[Tensor, Tensor]:
    """95% interval exp(log V ± t·se_jack(log V)); ``estimate [W]``, ``leave_out [G, W]``.

    ``usable`` ``[G]`` marks the groups that hold data. NaN where fewer than 2 groups do.
    """
    groups = int(usable.sum())
    if groups < 2:
        nan = torch.full_like(estimate, math.nan)
        return nan, nan
    logs = torch.log(leave_out[usable])
    spread = ((logs - logs.mean(0)) ** 2).sum(0) * (groups - 1) / groups
    half_width = student_t.quantile(0.5 + CONFIDENCE / 2, groups - 1) * spread.sqrt()
    low, high = estimate * torch.exp(-half_width), estimate * torch.exp(half_width)
    # V = 0 exactly (a deterministic estimator) has the degenerate interval [0, 0].
    zero = estimate == 0
    return torch.where(zero, 0.0, low), torch.where(zero, 0.0, high)
