"""Candidate 95% intervals for a variance, each from what a streaming run can keep.

Every method takes the moments of G contiguous groups of samples, count ``[G]``, mean and M2
``[G, R, P]`` for R independent runs of P coordinates, and returns (low, high) ``[R, P + 1]``
for the P coordinate variances and, last, their sum (the trace). Bonett's interval needs the
fourth moments as well, ``[R, P]`` power sums of the whole run (two more passes and 2P more
state per group in an engine); for the trace it needs the fourth moment of ‖g − ḡ‖, which no
stream keeps, so the benchmark hands it the two-pass value.

* ``gradbench``: the interval of :mod:`gradbench.stats.intervals` (a jackknife of log V with
  Satterthwaite's degrees of freedom and the 2/n² second-order term);
* ``jackknife``: delete-a-group jackknife of log V, t_{G−1} (the interval up to this release);
* ``jackknife-df``: the same with the t quantile on Satterthwaite's degrees of freedom of the
  jackknife variance, 2 / (2/(G−1) + (κ_p − 3)/G), κ_p the kurtosis of the G pseudo-values;
* ``bca``: BCa bootstrap over groups (Efron 1987), B resamples of the G groups, the
  acceleration from the jackknife's skewness;
* ``bonett``: Bonett (2006), exp(log(c·s²) ± z·c·√((κ̂ − (n − 3)/n)/(n − 1))), c = n/(n − z),
  κ̂ = n·Σd⁴/(Σd²)² about the mean (Bonett trims the mean for κ̂; a stream cannot).
"""

from __future__ import annotations

import math

import torch
from scipy import special
from torch import Tensor

from gradbench.stats import student_t
from gradbench.stats.intervals import CONFIDENCE, jackknife_log_interval
from gradbench.stats.moments import leave_one_group_out, pool

Z = float(special.ndtri(0.5 + CONFIDENCE / 2))


def with_trace(count: Tensor, mean: Tensor, m2: Tensor) -> tuple[Tensor, Tensor]:
    """V ``[R, P + 1]`` and the leave-one-group-out V ``[G, R, P + 1]`` (the trace last)."""
    total, pooled_mean, pooled_m2 = pool(count, mean.flatten(1), m2.flatten(1))
    rest, rest_m2 = leave_one_group_out(
        count, mean.flatten(1), m2.flatten(1), total, pooled_mean, pooled_m2
    )
    shape = mean.shape[1:]
    variance = (pooled_m2 / (total - 1)).view(shape)
    rest_var = (rest_m2 / (rest - 1).unsqueeze(1)).view(count.shape[0], *shape)
    return (
        torch.cat([variance, variance.sum(-1, keepdim=True)], -1),
        torch.cat([rest_var, rest_var.sum(-1, keepdim=True)], -1),
    )


def jackknife(count: Tensor, mean: Tensor, m2: Tensor, **_: Tensor) -> tuple[Tensor, Tensor]:
    variance, rest = with_trace(count, mean, m2)
    groups = count.shape[0]
    logs = rest.log()
    spread = ((logs - logs.mean(0)) ** 2).sum(0) * (groups - 1) / groups
    half = student_t.quantile(0.5 + CONFIDENCE / 2, groups - 1) * spread.sqrt()
    return variance * torch.exp(-half), variance * torch.exp(half)


def jackknife_df(count: Tensor, mean: Tensor, m2: Tensor, **_: Tensor) -> tuple[Tensor, Tensor]:
    """gradbench's interval without its 2/n² term (n = ∞ there): Satterthwaite's ν alone."""
    low, high, _ = library_interval(count, mean, m2, math.inf)
    return low, high


def bca(
    count: Tensor, mean: Tensor, m2: Tensor, resamples: int = 1000, seed: int = 0, **_: Tensor
) -> tuple[Tensor, Tensor]:
    variance, rest = with_trace(count, mean, m2)
    groups = count.shape[0]
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(groups, (resamples, groups), generator=generator)
    weights = torch.zeros(resamples, groups, dtype=torch.float64).scatter_add_(
        1, picks, torch.ones(resamples, groups, dtype=torch.float64)
    )
    flat_mean, flat_m2 = mean.flatten(1), m2.flatten(1)
    n_g = count.unsqueeze(1)
    total = weights @ count  # [B]
    first = weights @ (n_g * flat_mean)
    second = weights @ (flat_m2 + n_g * flat_mean**2)
    boot = ((second - first**2 / total.unsqueeze(1)) / (total - 1).unsqueeze(1)).view(
        resamples, *mean.shape[1:]
    )
    boot = torch.cat([boot, boot.sum(-1, keepdim=True)], -1).log()  # [B, R, W]
    estimate = variance.log()
    below = (boot < estimate).double().mean(0).clamp(0.5 / resamples, 1 - 0.5 / resamples)
    z0 = torch.from_numpy(special.ndtri(below.numpy()))
    logs = rest.log()
    d = logs.mean(0) - logs
    acceleration = (d**3).sum(0) / (6 * ((d**2).sum(0)) ** 1.5)
    ends = []
    for z in (-Z, Z):
        shifted = z0 + (z0 + z) / (1 - acceleration * (z0 + z))
        ends.append(torch.from_numpy(special.ndtr(shifted.numpy())))
    ordered = boot.sort(0).values

    def at(level: Tensor) -> Tensor:
        index = (level * (resamples - 1)).round().long().clamp(0, resamples - 1)
        return ordered.gather(0, index.unsqueeze(0)).squeeze(0)

    return at(ends[0]).exp(), at(ends[1]).exp()


def bonett(
    count: Tensor, mean: Tensor, m2: Tensor, kurtosis: Tensor, **_: Tensor
) -> tuple[Tensor, Tensor]:
    """``kurtosis [R, P + 1]``: κ̂ of each coordinate and of ‖g − ḡ‖ (two-pass, see above)."""
    variance, _ = with_trace(count, mean, m2)
    n = float(count.sum())
    c = n / (n - Z)
    se = c * ((kurtosis - (n - 3) / n).clamp(min=0) / (n - 1)).sqrt()
    centre = (c * variance).log()
    return torch.exp(centre - Z * se), torch.exp(centre + Z * se)


def library_interval(
    count: Tensor, mean: Tensor, m2: Tensor, n: float
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`gradbench.stats.intervals.jackknife_log_interval` on every run and column at once,
    on the groups the summary uses (some data, and more than one estimate left out)."""
    variance, rest = with_trace(count, mean, m2)
    shape = variance.shape
    usable = (count > 0) & (count.sum() - count > 1)
    low, high, kurtosis, _ = jackknife_log_interval(variance.flatten(), rest.flatten(1), usable, n)
    return low.view(shape), high.view(shape), kurtosis.view(shape)


def adopted(count: Tensor, mean: Tensor, m2: Tensor, **_: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """gradbench's interval (:mod:`gradbench.stats.intervals`), with its κ̂ ``[R, P + 1]``."""
    return library_interval(count, mean, m2, int(count.sum()))


METHODS = {
    "gradbench": adopted,
    "jackknife": jackknife,
    "jackknife-df": jackknife_df,
    "bca": bca,
    "bonett": bonett,
}


def group_moments(values: Tensor, groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """count ``[G]``, mean and M2 ``[G, R, P]`` of ``values [R, n, P]`` in the engine's groups
    ⌊i·G/n⌋, two-pass within each group."""
    n = values.shape[1]
    ids = torch.div(torch.arange(n) * groups, n, rounding_mode="floor")
    count = torch.bincount(ids, minlength=groups).double()
    sums = torch.zeros(values.shape[0], groups, values.shape[2], dtype=torch.float64)
    mean = sums.index_add(1, ids, values) / count.view(1, -1, 1)
    centred = values - mean[:, ids]
    m2 = sums.index_add(1, ids, centred**2)
    return count, mean.transpose(0, 1), m2.transpose(0, 1)


def kurtosis_with_trace(values: Tensor) -> Tensor:
    """κ̂ = n·Σd⁴/(Σd²)² about the mean, per coordinate, and n·Σ‖d‖⁴/(Σ‖d‖²)² (the kurtosis
    of ‖g − ḡ‖) for the trace, ``[R, P + 1]``."""
    centred = values - values.mean(1, keepdim=True)
    squared = centred**2
    norm = squared.sum(-1, keepdim=True)  # ‖g − ḡ‖² [R, n, 1]
    n = values.shape[1]
    coordinate = n * (squared**2).sum(1) / squared.sum(1) ** 2
    # the trace's "kurtosis" for Bonett: E q² / (E q)² with q = ‖g − ḡ‖², q's analogue of d⁴/d²²
    trace = n * (norm**2).sum(1) / norm.sum(1) ** 2
    return torch.cat([coordinate, trace], -1)


def interval(name: str, values: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    count, mean, m2 = group_moments(values, groups)
    kurtosis = kurtosis_with_trace(values) if name == "bonett" else None
    return METHODS[name](count, mean, m2, kurtosis=kurtosis)
