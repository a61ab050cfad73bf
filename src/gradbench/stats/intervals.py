"""The variance interval: a delete-a-group jackknife of log V, with Satterthwaite's degrees of
freedom and the second-order term of a variance estimate.

Over the G groups of the streaming moments, with V_(g) the variance without group g and the
pseudo-values p_g = G·log V − (G − 1)·log V_(g) (Efron & Stein 1981; the log makes the
interval positive and absorbs the right skew of variance estimates under heavy tails):

* se_J² = s²(p) / G, the jackknife variance of log V;
* se² = se_J² + 2/n²: s² = (1/n)·Σ(x − μ)² − (x̄ − μ)² up to n/(n − 1), and the second term
  is σ²·χ²₁/n by the central limit theorem, of variance 2σ⁴/n². Var(s²)/σ⁴ = (κ − 1)/n +
  (2 − 2(κ − 1))/n² + O(n⁻³), so 2/n² is a conservative floor, exact for κ = 1 (a symmetric
  two-point law: REINFORCE on a Bernoulli at θ = 0, where the jackknife alone covers ~82%
  and this 100% of the benchmark's runs), and negligible (≪ se_J²) whenever κ − 1 ≫ 1/n;
* ν = 2 / (2/(G − 1) + (κ_p − 3)/G), κ_p the kurtosis of the pseudo-values, clipped to
  [1, G − 1]: the degrees of freedom of se_J² when the pseudo-values are heavy-tailed
  (Satterthwaite), so that a run whose groups disagree wildly gets a wider quantile;
* the interval V · exp(± t_{ν, 0.975} · se).

From the same pieces, κ̂ = 1 + n·se_J² estimates the kurtosis of the estimate (for a scalar
Var(s²)/σ⁴ ≈ (κ − 1)/n; for the trace, E‖g − ḡ‖⁴ / (E‖g − ḡ‖²)²). No interval built from n
samples holds its 95% when κ̂ is large for n: the coverage benchmark
(``benchmarks/interval_coverage.py``, docs/measurement.md) finds it does from
n ≥ :data:`SAMPLES_PER_KURTOSIS` · κ̂.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from gradbench.stats import student_t

CONFIDENCE = 0.95

#: The interval is trusted from n ≥ SAMPLES_PER_KURTOSIS · κ̂ (see the module docstring).
SAMPLES_PER_KURTOSIS = 100


def samples_needed(kurtosis: float) -> int | None:
    """The n from which the variance interval of an estimate of kurtosis κ̂ is trusted; None
    for κ̂ = ∞ (no n read from this run would do)."""
    return None if math.isinf(kurtosis) else math.ceil(SAMPLES_PER_KURTOSIS * kurtosis)


def interval_is_trusted(n: float, kurtosis: float) -> bool:
    """Whether n estimates of kurtosis κ̂ give a variance interval that holds its 95%; an
    undefined κ̂ (V = 0, or no interval) is not held against a run."""
    return not n < SAMPLES_PER_KURTOSIS * kurtosis  # False only for a defined, large κ̂


class LogInterval(NamedTuple):
    """The 95% interval [``low``, ``high``] of V, the estimate's kurtosis κ̂, and the degrees
    of freedom ``df`` of the t quantile the interval used, each ``[W]``."""

    low: Tensor
    high: Tensor
    kurtosis: Tensor
    df: Tensor


def jackknife_log_interval(
    estimate: Tensor, leave_out: Tensor, usable: Tensor, n: int
) -> LogInterval:
    """The 95% interval of V, κ̂ and the t's degrees of freedom (module docstring), each
    ``[W]``, from ``estimate [W]``,
    the leave-one-group-out variances ``leave_out [G, W]``, the groups that hold data
    ``usable [G]`` and the sample size ``n``. NaN where fewer than 2 groups hold data; the
    interval of V = 0 exactly (a deterministic estimator) is [0, 0]."""
    groups = int(usable.sum())
    if groups < 2:
        nan = torch.full_like(estimate, math.nan)
        return LogInterval(nan, nan, nan, nan)
    pseudo = groups * estimate.log() - (groups - 1) * leave_out[usable].log()
    centred = pseudo - pseudo.mean(0)
    second = (centred**2).sum(0)
    jackknife_variance = second / (groups * (groups - 1))
    pseudo_kurtosis = groups * (centred**4).sum(0) / second**2
    df = (2 / (2 / (groups - 1) + (pseudo_kurtosis - 3) / groups)).clamp(1.0, groups - 1.0)
    # NaN where V or a V_(g) is 0 or not finite; those intervals stay NaN.
    df = torch.where(df.isnan(), groups - 1.0, df)
    quantile = student_t.quantiles(0.5 + CONFIDENCE / 2, df)
    half_width = quantile * (jackknife_variance + 2 / n**2).sqrt()
    low, high = estimate * torch.exp(-half_width), estimate * torch.exp(half_width)
    zero = estimate == 0
    # V > 0 with an undefined jackknife (a group that holds all the variance): κ̂ = ∞, untrusted.
    kurtosis = torch.nan_to_num(1 + n * jackknife_variance, nan=math.inf)
    kurtosis = torch.where(zero, math.nan, kurtosis)
    return LogInterval(torch.where(zero, 0.0, low), torch.where(zero, 0.0, high), kurtosis, df)
