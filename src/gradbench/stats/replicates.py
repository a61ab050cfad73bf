"""Rules that combine R independent replicates of one measurement (a sweep's ``--seeds``).

* the bias verdict over replicates: the smallest replicate p-value × the number of replicates
  that have one (Bonferroni over the tests actually made; a replicate whose test is undefined,
  e.g. zero variance and zero bias, makes no test and is not counted);
* a band over replicates: mean ± t_{0.975, R−1} · s/√R;
* the variance over replicates: their mean V̄ with the interval of a single run
  (:func:`gradbench.stats.intervals.jackknife_log_interval`), each replicate a group: the
  delete-a-replicate jackknife of log V̄.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from gradbench.stats import student_t
from gradbench.stats.intervals import jackknife_log_interval


def combined_bias_p(p_values: Iterable[float]) -> float:
    """min(1, k · min p) over the k defined p-values; NaN when none is defined.

    The mean ‖bias‖ alone is no test: for an unbiased estimator it is the noise floor, about
    √(variance/n)."""
    defined = [float(p) for p in p_values if not math.isnan(float(p))]
    return min(1.0, len(defined) * min(defined)) if defined else math.nan


def mean_and_se(values: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error s/√k of the k defined values (the error is NaN where k < 2)."""
    defined = [float(v) for v in values if not math.isnan(float(v))]
    if not defined:
        return math.nan, math.nan
    mean = math.fsum(defined) / len(defined)
    if len(defined) < 2:
        return mean, math.nan
    spread = math.fsum((v - mean) ** 2 for v in defined) / (len(defined) - 1)
    return mean, math.sqrt(spread / len(defined))


def replicate_band(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width t_{(1+confidence)/2, k−1} · SE) over the k defined values; the
    half-width is NaN where k < 2."""
    defined = [float(v) for v in values if not math.isnan(float(v))]
    mean, se = mean_and_se(defined)
    if math.isnan(se):
        return mean, math.nan
    return mean, student_t.quantile(0.5 + confidence / 2, len(defined) - 1) * se


def replicate_variance_interval(
    values: Iterable[float], n_total: int
) -> tuple[float, float, float]:
    """(V̄, low, high) over the k defined replicate variances, from ``n_total`` estimates in
    all: the variance interval of one run with the replicates as its groups (the bounds are
    NaN where k < 2)."""
    defined = torch.tensor(
        [float(v) for v in values if not math.isnan(float(v))], dtype=torch.float64
    )
    if defined.numel() == 0:
        return math.nan, math.nan, math.nan
    if not n_total > 0:  # unknown (a file from before n_used was recorded)
        return float(defined.mean()), math.nan, math.nan
    k = defined.numel()
    mean = defined.mean()
    leave_out = ((defined.sum() - defined) / max(k - 1, 1)).unsqueeze(1)  # [k, 1]
    low, high, *_ = jackknife_log_interval(
        mean.reshape(1), leave_out, torch.ones(k, dtype=torch.bool), n_total
    )
    return float(mean), float(low[0]), float(high[0])
