"""Streaming float64 statistics of per-sample gradient estimates.

Estimates arrive in chunks ``[m, P]``. :class:`GradientStatistics` keeps, on the estimates'
device and in float64, the count, mean and sum of squared deviations (M2) of every coordinate
for each of G contiguous groups of samples, merged chunk by chunk with the pairwise update of
Chan, Golub & LeVeque (1979), which is exact and stable in any order. From these it derives
every column of the result (definitions in DESIGN.md):

* s_j² = M2_j / (N − 1), ``variance`` = Σ_j s_j² (trace of the covariance of one estimate);
* ``bias`` b_j = ḡ_j − g*_j with standard error s_j/√N, ``bias_z_max`` = max_j |b_j|/(s_j/√N),
  ``bias_p`` = min(1, P · P(|T_{N−1}| > z_max)), the Bonferroni-corrected two-sided p-value
  (Student's t, exact at small N, normal at large N). The
  standard error has a rounding floor (see :func:`_bias_z`), so a coordinate exact up to its
  dtype's rounding is not called biased; where g* is itself an estimate with standard error
  r_j on ν_r degrees of freedom, the standard error of b_j is √(s_j²/N + r_j²), so a bias
  within the reference's own error is not distinguishable, and the t tail takes the
  Welch–Satterthwaite degrees of freedom of that sum, the smallest over the coordinates
  (conservative): ν_j = (a + b)² / (a²/(N − 1) + b²/ν_r), a = s_j²/N, b = r_j²;
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

import torch
from torch import Tensor

from gradbench.stats import distributions as student_t

#: The rounding floor of a bias's standard error, in machine epsilons relative to max |g*|.
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

    def __init__(
        self,
        reference: Tensor,
        n_total: int,
        reference_se: Tensor | None = None,
        reference_df: float = math.inf,
        groups: int = DEFAULT_GROUPS,
    ) -> None:
        if n_total < 1:
            raise ValueError(f"n_total must be >= 1, got {n_total}")
        device = reference.device
        self.reference = reference.to(torch.float64)
        self.reference_se = None if reference_se is None else reference_se.double().cpu()
        self.reference_df = reference_df
        self.n_total = n_total
        self.groups = max(1, min(groups, n_total))
        width = self.reference.numel() + _EXTRA
        self.count = torch.zeros(self.groups, 1, dtype=torch.float64, device=device)
        self.mean = torch.zeros(self.groups, width, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(self.groups, width, dtype=torch.float64, device=device)
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=device)
        self.added = 0
        self.eps = torch.finfo(torch.float64).eps  # of the estimates' dtype, set by add()
        # Moments are kept of values − shift (the first chunk's first row): a column that is
        # constant then has M2 exactly 0, and large offsets lose no precision.
        self.shift = torch.zeros(width, dtype=torch.float64, device=device)

    def add(self, estimates: Tensor) -> None:
        """Fold the next chunk of estimates ``[m, P]`` (samples ``added … added + m − 1``).

        The state changes only when the whole chunk is folded, so a chunk that fails (out of
        memory, say) can be retried.
        """
        m = estimates.shape[0]
        if self.added + m > self.n_total:
            raise ValueError(f"more than n_total={self.n_total} estimates added")
        values = self._per_sample_values(estimates)
        finite = values.sum(dim=1).isfinite()  # a row holding NaN or ±Inf sums to NaN or ±Inf
        shift = self.shift
        if self.added == 0:
            shift = torch.where(values[0].isfinite(), values[0], 0.0)
        values.sub_(shift)

        segments = self._segments(m)
        # On the CPU reading one flag back costs nothing and allows the fused var_mean; on a
        # GPU the masked path runs unconditionally, so the loop never waits for the device.
        if values.device.type == "cpu" and bool(finite.all()):
            count, mean, m2 = _segment_moments(values, segments)
        else:
            count, mean, m2 = _masked_segment_moments(values, finite, segments)
        groups = torch.tensor([group for group, _, _ in segments], device=values.device)
        merged = _chan_merge(
            self.count[groups], self.mean[groups], self.m2[groups], count, mean, m2
        )
        nonfinite = self.nonfinite + (~finite).sum()

        self.count = self.count.index_copy(0, groups, merged[0])
        self.mean = self.mean.index_copy(0, groups, merged[1])
        self.m2 = self.m2.index_copy(0, groups, merged[2])
        self.nonfinite, self.shift = nonfinite, shift
        self.eps = max(self.eps, torch.finfo(estimates.dtype).eps)
        self.added += m

    def _segments(self, m: int) -> list[tuple[int, int, int]]:
        """(group, start, stop) of the contiguous rows of the next chunk that share a group."""
        segments = []
        start = 0
        while start < m:
            group = (self.added + start) * self.groups // self.n_total
            first_of_next = -(-(group + 1) * self.n_total // self.groups)  # ⌈(g+1)·N/G⌉
            stop = min(m, first_of_next - self.added)
            segments.append((group, start, stop))
            start = stop
        return segments

    def _per_sample_values(self, estimates: Tensor) -> Tensor:
        """``[m, P + 3]`` float64: g_i, then ‖g_i − g*‖², cos(g_i, g*), 1[g_i · g* < 0]."""
        m, width = estimates.shape
        ref = self.reference
        values = torch.empty(m, width + _EXTRA, dtype=torch.float64, device=estimates.device)
        g = values[:, :width]
        g.copy_(estimates)
        dot = g @ ref
        norms = torch.linalg.vector_norm(g, dim=1) * torch.linalg.vector_norm(ref)
        values[:, width + _SQUARED_ERROR] = torch.linalg.vector_norm(g - ref, dim=1) ** 2
        values[:, width + _COSINE] = torch.where(norms > 0, dot / norms, 0.0)
        values[:, width + _SIGN_ERROR] = dot < 0
        return values

    def summary(self) -> Summary:
        """All statistics, computed on the host in float64 (one transfer)."""
        count = self.count.squeeze(1).cpu()
        mean, m2, shift = self.mean.cpu(), self.m2.cpu(), self.shift.cpu()
        nonfinite = int(self.nonfinite.cpu())
        return summarise(
            count,
            mean,
            m2,
            self.reference.cpu(),
            nonfinite,
            self.eps,
            shift,
            self.reference_se,
            self.reference_df,
        )


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
    #: Standard errors ``[P]`` of an estimated reference; None when the reference is exact.
    reference_se: Tensor | None = None

    @property
    def bias(self) -> Tensor:
        return self.mean - self.reference


def _segment_moments(
    values: Tensor, segments: list[tuple[int, int, int]]
) -> tuple[Tensor, Tensor, Tensor]:
    """count ``[S, 1]``, mean and M2 ``[S, W]`` of each segment of rows (all finite)."""
    counts, means, m2s = [], [], []
    for _, start, stop in segments:
        variance, mean = torch.var_mean(values[start:stop], dim=0, correction=0)
        counts.append(stop - start)
        means.append(mean)
        m2s.append(variance * (stop - start))
    count = torch.tensor(counts, dtype=torch.float64, device=values.device).unsqueeze(1)
    return count, torch.stack(means), torch.stack(m2s)


def _masked_segment_moments(
    values: Tensor, finite: Tensor, segments: list[tuple[int, int, int]]
) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`_segment_moments`, leaving out the rows where ``finite`` is False."""
    weight = finite.to(torch.float64).unsqueeze(1)
    values = values.masked_fill(~finite.unsqueeze(1), 0.0)
    counts, means, m2s = [], [], []
    for _, start, stop in segments:
        count = weight[start:stop].sum(dim=0)
        mean = values[start:stop].sum(dim=0) / count.clamp(min=1)
        deviation = (values[start:stop] - mean) * weight[start:stop]
        counts.append(count)
        means.append(mean)
        m2s.append((deviation * deviation).sum(dim=0))
    return torch.stack(counts), torch.stack(means), torch.stack(m2s)


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
    half_width = student_t.quantile(0.5 + CONFIDENCE / 2, groups - 1) * spread.sqrt()
    low, high = estimate * torch.exp(-half_width), estimate * torch.exp(half_width)
    # V = 0 exactly (a deterministic estimator) has the degenerate interval [0, 0].
    zero = estimate == 0
    return torch.where(zero, 0.0, low), torch.where(zero, 0.0, high)


def _bias_z(bias: Tensor, bias_se: Tensor, reference: Tensor, eps: float) -> Tensor:
    """|b_j| / √(se_j² + δ²) per coordinate ``[P]``, δ the rounding floor.

    δ = 1000 ε · max_j |g*_j| (ε of the estimates' dtype; absolute when g* = 0): a coordinate
    that is exact up to rounding (its estimates barely vary) is not called biased for its last
    bits. With sampling noise δ is negligible (2e-13 relative in float64).
    """
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    floor = ROUNDING_EPSILONS * eps * (scale if scale > 0 else 1.0)
    return bias.abs() / torch.sqrt(bias_se**2 + floor**2)


def _welch_degrees_of_freedom(
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


def summarise(
    count: Tensor,
    mean: Tensor,
    m2: Tensor,
    reference: Tensor,
    n_nonfinite: int,
    eps: float = torch.finfo(torch.float64).eps,
    shift: Tensor | None = None,
    reference_se: Tensor | None = None,
    reference_df: float = math.inf,
) -> Summary:
    """Statistics from per-group moments: ``count [G]``, ``mean``/``m2`` ``[G, P + 3]``.

    ``mean`` holds the means of values − ``shift`` (``[P + 3]``, zero by default); ``eps`` is the
    machine epsilon of the estimates' dtype (it sets the rounding floor of the bias test);
    ``reference_se`` ``[P]`` is the standard error of an estimated reference (None: exact), on
    ``reference_df`` degrees of freedom.
    """
    P = reference.numel()
    total, pooled_mean, pooled_m2 = _pool(count, mean, m2)
    n = int(total)
    nan = math.nan
    sample_var = pooled_m2 / (total - 1) if n > 1 else torch.full_like(pooled_m2, nan)

    # Shift-invariant below, except the means reported, which get the shift back.
    if n == 0:
        reported_mean = torch.full_like(pooled_mean, nan)
    else:
        reported_mean = pooled_mean if shift is None else pooled_mean + shift
    grad_mean, grad_var = reported_mean[:P], sample_var[:P]
    variance = float(grad_var.sum())

    usable = count > 0
    rest, rest_m2 = _leave_one_group_out(count, mean, m2, total, pooled_mean, pooled_m2)
    rest_var = rest_m2[:, :P] / (rest - 1).clamp(min=1).unsqueeze(1)
    coord_low, coord_high = _jackknife_log_interval(grad_var, rest_var, usable & (rest > 1))
    trace_low, trace_high = _jackknife_log_interval(
        grad_var.sum().reshape(1), rest_var.sum(1, keepdim=True), usable & (rest > 1)
    )

    bias = grad_mean - reference
    run_error = grad_var / max(n, 1)
    bias_se = run_error.sqrt()
    degrees_of_freedom = float(n - 1)
    if reference_se is not None:
        bias_se = torch.sqrt(run_error + reference_se**2)
        degrees_of_freedom = _welch_degrees_of_freedom(
            run_error, n - 1, reference_se**2, reference_df
        )
    bias_z = _bias_z(bias, bias_se, reference, eps)
    defined = bias_z[~torch.isnan(bias_z)]
    z_max = float(defined.max()) if defined.numel() else nan
    tail = student_t.two_sided_p(z_max, degrees_of_freedom) if n > 1 else nan
    bias_p = min(1.0, defined.numel() * tail) if defined.numel() else nan

    def mean_and_se(column: int) -> tuple[float, float]:
        se = (sample_var[P + column] / max(n, 1)).sqrt()
        return float(reported_mean[P + column]), float(se)

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
        reference_se=reference_se,
    )
