"""Streaming float64 statistics of per-sample gradient estimates.

Estimates arrive in chunks ``[m, P]``. :class:`GradientStatistics` keeps, on the estimates'
device and in float64, the count, mean and sum of squared deviations (M2) of every coordinate
for each of G contiguous groups of samples, merged chunk by chunk with the pairwise update of
Chan, Golub & LeVeque (1979), which is exact and stable in any order. From these it derives
every column of the result (definitions in DESIGN.md):

* s_j² = M2_j / (N − 1), ``variance`` = Σ_j s_j² (trace of the covariance of one estimate);
* ``bias`` b_j = ḡ_j − g*_j with standard error s_j/√N, ``bias_z_max`` = max_j |b_j|/(s_j/√N),
  ``bias_p`` = min(1, P · 2Φ(−z_max)), the Bonferroni-corrected two-sided p-value, over the
  coordinates where z is defined (a coordinate without noise has z = ∞ when biased beyond
  rounding and no z otherwise);
* ``mse`` = mean_i ‖g_i − g*‖², ``cosine`` = mean_i cos(g_i, g*) (a zero estimate counts as
  orthogonal), ``sign_error`` = mean_i 1[g_i · g* < 0], each with its standard error s/√N.

**The variance interval** makes no Gaussian assumption: it is a delete-a-group jackknife of
log V over the G groups (Efron & Stein 1981; the log makes the interval positive and absorbs the
right skew of variance estimates under heavy tails), V · exp(± t_{G−1, 0.975} · se_jack(log V)).
The same is done per coordinate for s_j².

Estimates with a NaN or Inf coordinate are counted and left out of every statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch import Tensor

#: A bias known without sampling noise counts when it exceeds this many epsilons (relative).
ROUNDING_EPSILONS = 1000
#: Groups of the jackknife. 64 gives an interval whose own standard error is ~9% of its width.
DEFAULT_GROUPS = 64
CONFIDENCE = 0.95

# Per-sample scalar columns tracked next to the P gradient coordinates.
_SQUARED_ERROR, _COSINE, _SIGN_ERROR = range(3)
_EXTRA = 3


def _chan_merge(
    count_a: Tensor, mean_a: Tensor, m2_a: Tensor, count_b: Tensor, mean_b: Tensor, m2_b: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Merge (count, mean, M2) of two disjoint sets; counts ``[G, 1]``, the rest ``[G, W]``."""
    count = count_a + count_b
    safe = count.clamp(min=1)
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / safe)
    m2 = m2_a + m2_b + delta**2 * (count_a * count_b / safe)
    return count, mean, m2


class GradientStatistics:
    """Accumulator of per-sample estimates ``[m, P]`` against a reference gradient ``[P]``.

    ``n_total`` is the number of estimates that will be added; it fixes the group of sample i as
    ⌊i·G/n_total⌋, so groups are contiguous and balanced whatever the chunk sizes. No method
    but :meth:`summary` moves data to the host.
    """

    def __init__(self, reference: Tensor, n_total: int, groups: int = DEFAULT_GROUPS) -> None:
        if n_total < 1:
            raise ValueError(f"n_total must be >= 1, got {n_total}")
        device = reference.device
        self.reference = reference.to(torch.float64)
        self.n_total = n_total
        self.groups = max(1, min(groups, n_total))
        width = self.reference.numel() + _EXTRA
        self.count = torch.zeros(self.groups, 1, dtype=torch.float64, device=device)
        self.mean = torch.zeros(self.groups, width, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(self.groups, width, dtype=torch.float64, device=device)
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=device)
        self.added = 0
        self.eps = torch.finfo(torch.float64).eps  # of the estimates' dtype, set by add()

    def add(self, estimates: Tensor) -> None:
        """Fold the next chunk of estimates ``[m, P]`` (samples ``added … added + m − 1``)."""
        m = estimates.shape[0]
        self.eps = max(self.eps, torch.finfo(estimates.dtype).eps)
        if self.added + m > self.n_total:
            raise ValueError(f"more than n_total={self.n_total} estimates added")
        g = estimates.to(torch.float64)
        finite = torch.isfinite(g).all(dim=1)
        self.nonfinite += (~finite).sum()
        g = torch.where(finite.unsqueeze(1), g, 0.0)
        values = torch.cat([g, self._per_sample_scalars(g)], dim=1)

        index = torch.arange(self.added, self.added + m, device=g.device)
        group = index * self.groups // self.n_total
        weight = finite.to(torch.float64).unsqueeze(1)
        count = torch.zeros_like(self.count).index_add_(0, group, weight)
        total = torch.zeros_like(self.mean).index_add_(0, group, values * weight)
        mean = total / count.clamp(min=1)
        deviation = (values - mean[group]) * weight
        m2 = torch.zeros_like(self.m2).index_add_(0, group, deviation**2)

        self.count, self.mean, self.m2 = _chan_merge(
            self.count, self.mean, self.m2, count, mean, m2
        )
        self.added += m

    def _per_sample_scalars(self, g: Tensor) -> Tensor:
        """``[m, 3]``: ‖g_i − g*‖², cos(g_i, g*), 1[g_i · g* < 0]."""
        ref = self.reference
        dot = g @ ref
        norms = g.norm(dim=1) * ref.norm()
        cosine = torch.where(norms > 0, dot / norms.clamp(min=torch.finfo(g.dtype).tiny), 0.0)
        columns = [((g - ref) ** 2).sum(dim=1), cosine, (dot < 0).to(g.dtype)]
        return torch.stack(columns, dim=1)

    def summary(self) -> Summary:
        """All statistics, computed on the host in float64 (one transfer)."""
        count = self.count.squeeze(1).cpu()
        mean, m2 = self.mean.cpu(), self.m2.cpu()
        nonfinite = int(self.nonfinite.cpu())
        return summarise(count, mean, m2, self.reference.cpu(), nonfinite, self.eps)


@dataclass(frozen=True)
class Summary:
    """The statistics of one run; per-coordinate tensors are ``[P]`` float64 on the CPU."""

    n_used: int
    n_nonfinite: int
    mean: Tensor
    reference: Tensor
    coordinate_variance: Tensor
    coordinate_variance_ci: tuple[Tensor, Tensor]
    bias_se: Tensor
    bias_z: Tensor
    variance: float
    variance_ci: tuple[float, float]
    bias_norm: float
    bias_z_max: float
    bias_p: float
    mse: float
    mse_se: float
    snr: float
    cosine: float
    cosine_se: float
    sign_error: float
    sign_error_se: float

    @property
    def bias(self) -> Tensor:
        return self.mean - self.reference


def _pool(count: Tensor, mean: Tensor, m2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Merge G groups ``count [G], mean [G, W], m2 [G, W]`` into one ``[W]`` set."""
    total = count.sum()
    pooled_mean = (count.unsqueeze(1) * mean).sum(0) / total.clamp(min=1)
    spread = (count.unsqueeze(1) * (mean - pooled_mean) ** 2).sum(0)
    return total, pooled_mean, m2.sum(0) + spread


def _leave_one_group_out(
    count: Tensor, mean: Tensor, m2: Tensor, total: Tensor, pooled_mean: Tensor, pooled_m2: Tensor
) -> tuple[Tensor, Tensor]:
    """Counts ``[G]`` and M2 ``[G, W]`` of the data without group g, for each g (reverse Chan)."""
    rest = total - count
    rest_mean = (total * pooled_mean - count.unsqueeze(1) * mean) / rest.clamp(min=1).unsqueeze(1)
    delta = mean - rest_mean
    rest_m2 = pooled_m2 - m2 - delta**2 * (count * rest / total).unsqueeze(1)
    return rest, rest_m2.clamp(min=0)


def student_t_quantile(probability: float, df: float) -> float:
    """Quantile of Student's t via the Cornish–Fisher expansion (Abramowitz & Stegun 26.7.5).

    Accurate to about 1e-5 for df ≥ 5; the normal quantile when df is infinite.
    """
    z = NormalDist().inv_cdf(probability)
    if math.isinf(df):
        return z
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def two_sided_p(z: float) -> float:
    """P(|Z| > z) for a standard normal Z."""
    return math.erfc(z / math.sqrt(2))


def _jackknife_log_interval(
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
    half_width = student_t_quantile(0.5 + CONFIDENCE / 2, groups - 1) * spread.sqrt()
    low, high = estimate * torch.exp(-half_width), estimate * torch.exp(half_width)
    # V = 0 exactly (a deterministic estimator) has the degenerate interval [0, 0].
    zero = estimate == 0
    return torch.where(zero, 0.0, low), torch.where(zero, 0.0, high)


def _bias_z(bias: Tensor, bias_se: Tensor, reference: Tensor, eps: float) -> Tensor:
    """|b_j| / se_j per coordinate ``[P]``.

    A coordinate without sampling noise (se_j = 0) knows its bias exactly: z_j = ∞ when the
    bias exceeds rounding (1000 ε of the estimates' dtype, relative to max_j |g*_j|), else
    undefined (NaN), as is every coordinate of a run with fewer than two estimates.
    """
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    rounding = ROUNDING_EPSILONS * eps * (scale if scale > 0 else 1.0)
    exact = torch.where(bias.abs() > rounding, math.inf, math.nan).to(bias.dtype)
    return torch.where(bias_se == 0, exact, bias.abs() / bias_se)


def summarise(
    count: Tensor,
    mean: Tensor,
    m2: Tensor,
    reference: Tensor,
    n_nonfinite: int,
    eps: float = torch.finfo(torch.float64).eps,
) -> Summary:
    """Statistics from per-group moments: ``count [G]``, ``mean``/``m2`` ``[G, P + 3]``.

    ``eps`` is the machine epsilon of the estimates' dtype (it sets the rounding tolerance of
    coordinates without sampling noise).
    """
    P = reference.numel()
    total, pooled_mean, pooled_m2 = _pool(count, mean, m2)
    n = int(total)
    nan = math.nan
    sample_var = pooled_m2 / (total - 1) if n > 1 else torch.full_like(pooled_m2, nan)

    grad_mean, grad_var = pooled_mean[:P], sample_var[:P]
    variance = float(grad_var.sum())

    usable = count > 0
    rest, rest_m2 = _leave_one_group_out(count, mean, m2, total, pooled_mean, pooled_m2)
    rest_var = rest_m2[:, :P] / (rest - 1).clamp(min=1).unsqueeze(1)
    coord_low, coord_high = _jackknife_log_interval(grad_var, rest_var, usable & (rest > 1))
    trace_low, trace_high = _jackknife_log_interval(
        grad_var.sum().reshape(1), rest_var.sum(1, keepdim=True), usable & (rest > 1)
    )

    bias = grad_mean - reference
    bias_se = (grad_var / max(n, 1)).sqrt()
    bias_z = _bias_z(bias, bias_se, reference, eps)
    defined = bias_z[~torch.isnan(bias_z)]
    z_max = float(defined.max()) if defined.numel() else nan
    bias_p = min(1.0, defined.numel() * two_sided_p(z_max)) if defined.numel() else nan

    def mean_and_se(column: int) -> tuple[float, float]:
        return float(pooled_mean[P + column]), float((sample_var[P + column] / max(n, 1)).sqrt())

    reference_norm = float(reference.norm())
    direction_defined = reference_norm > 0 and n > 0
    cosine, cosine_se = mean_and_se(_COSINE) if direction_defined else (nan, nan)
    sign_error, sign_se = mean_and_se(_SIGN_ERROR) if direction_defined else (nan, nan)
    mse, mse_se = mean_and_se(_SQUARED_ERROR) if n > 0 else (nan, nan)
    if variance > 0:
        snr = reference_norm / math.sqrt(variance)
    else:
        snr = nan if reference_norm == 0 or math.isnan(variance) else math.inf

    return Summary(
        n_used=n,
        n_nonfinite=n_nonfinite,
        mean=grad_mean,
        reference=reference,
        coordinate_variance=grad_var,
        coordinate_variance_ci=(coord_low, coord_high),
        bias_se=bias_se,
        bias_z=bias_z,
        variance=variance,
        variance_ci=(float(trace_low[0]), float(trace_high[0])),
        bias_norm=float(bias.norm()) if n > 0 else nan,
        bias_z_max=z_max,
        bias_p=bias_p,
        mse=mse,
        mse_se=mse_se,
        snr=snr,
        cosine=cosine,
        cosine_se=cosine_se,
        sign_error=sign_error,
        sign_error_se=sign_se,
    )
