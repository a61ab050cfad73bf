"""The summary of one run: every statistical column, from streamed per-group moments.

:class:`~gradbench.stats.accumulator.GradientStatistics` keeps, in float64, the count, mean and
M2 of every coordinate (and of three per-sample columns) for each of G contiguous groups of
samples; :func:`summarise` derives from them every column of the result (definitions in
``docs/measurement.md``):

* s_j² = M2_j / (N − 1), ``variance`` = Σ_j s_j² (trace of the covariance of one estimate);
* ``bias`` b_j = ḡ_j − g*_j with standard error s_j/√N, ``bias_z_max`` = max_j |b_j|/(s_j/√N),
  ``bias_p`` = min(1, P · P(|T_{N−1}| > z_max)), the Bonferroni-corrected two-sided p-value
  (Student's t), with a rounding floor and an estimated reference's own error
  (:mod:`gradbench.stats.bias_test`);
* ``mse`` = mean_i ‖g_i − g*‖² = Σ_j (M2_j/N + b_j²), ``cosine`` = mean_i cos(g_i, g*) (a zero
  estimate counts as orthogonal), ``sign_error`` = mean_i 1[g_i · g* < 0], each with its
  standard error s/√N (the per-sample columns are reduced in the estimates' dtype);
* the variance interval: a delete-a-group jackknife of log V over the G groups with
  Satterthwaite's degrees of freedom (:mod:`gradbench.stats.intervals`), for the trace and for
  every s_j²; ``variance_kurtosis`` κ̂ = 1 + n·se_J²(log V) of the trace, which says whether
  the interval can be trusted at this n.

Estimates with a NaN or Inf coordinate are counted and left out of every statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gradbench.stats import student_t
from gradbench.stats.bias_test import bias_z, welch_degrees_of_freedom
from gradbench.stats.intervals import LogInterval, jackknife_log_interval
from gradbench.stats.moments import leave_one_group_out, pool

#: Per-sample scalar columns tracked after the P gradient coordinates, in this order:
#: ‖g_i − g*‖², cos(g_i, g*), 1[g_i · g* < 0].
SQUARED_ERROR, COSINE, SIGN_ERROR = range(3)
PER_SAMPLE_COLUMNS = 3

NAN = math.nan


@dataclass(frozen=True)
class Summary:
    """The statistics of one run; per-coordinate tensors are ``[P]`` float64 on the CPU."""

    n_used: int
    n_nonfinite: int
    mean: Tensor
    reference: Tensor
    coordinate_variance: Tensor
    coordinate_variance_ci: tuple[Tensor, Tensor]
    #: Degrees of freedom of each coordinate interval's t quantile (Satterthwaite's ν).
    coordinate_variance_df: Tensor
    bias_se: Tensor
    bias_z: Tensor
    variance: float
    variance_ci: tuple[float, float]
    variance_kurtosis: float
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
    total, pooled_mean, pooled_m2 = pool(count, mean, m2)
    n = int(total)
    sample_var = pooled_m2 / (total - 1) if n > 1 else torch.full_like(pooled_m2, NAN)
    # Everything is shift-invariant except the means reported, which get the shift back.
    if n == 0:
        reported_mean = torch.full_like(pooled_mean, NAN)
    else:
        reported_mean = pooled_mean if shift is None else pooled_mean + shift
    grad_mean, grad_var = reported_mean[:P], sample_var[:P]
    variance = float(grad_var.sum())
    pooled = (total, pooled_mean, pooled_m2)
    coordinate_ci, trace_ci, kurtosis = _variance_intervals(count, mean, m2, pooled, grad_var)
    bias = grad_mean - reference
    bias_se, z, z_max, bias_p = _bias_test(
        bias, grad_var, n, reference, eps, reference_se, reference_df
    )

    def mean_and_se(column: int) -> tuple[float, float]:
        se = (sample_var[P + column] / max(n, 1)).sqrt()
        return float(reported_mean[P + column]), float(se)

    reference_norm = float(reference.norm())
    direction_defined = reference_norm > 0 and n > 0
    cosine, cosine_se = mean_and_se(COSINE) if direction_defined else (NAN, NAN)
    sign_error, sign_se = mean_and_se(SIGN_ERROR) if direction_defined else (NAN, NAN)
    # mean_i ‖g_i − g*‖² = Σ_j (M2_j/N + b_j²), exactly, from the float64 coordinate moments;
    # the per-sample column (reduced in the estimates' dtype) gives its standard error.
    mse = float((pooled_m2[:P] / total + bias**2).sum()) if n > 0 else NAN
    mse_se = mean_and_se(SQUARED_ERROR)[1] if n > 0 else NAN
    return Summary(
        n_used=n,
        n_nonfinite=n_nonfinite,
        mean=grad_mean,
        reference=reference,
        coordinate_variance=grad_var,
        coordinate_variance_ci=(coordinate_ci.low, coordinate_ci.high),
        coordinate_variance_df=coordinate_ci.df,
        bias_se=bias_se,
        bias_z=z,
        variance=variance,
        variance_ci=trace_ci,
        variance_kurtosis=kurtosis,
        bias_norm=float(bias.norm()) if n > 0 else NAN,
        bias_z_max=z_max,
        bias_p=bias_p,
        mse=mse,
        mse_se=mse_se,
        snr=_signal_to_noise(reference_norm, variance),
        cosine=cosine,
        cosine_se=cosine_se,
        sign_error=sign_error,
        sign_error_se=sign_se,
        reference_se=reference_se,
    )


def _variance_intervals(
    count: Tensor,
    mean: Tensor,
    m2: Tensor,
    pooled: tuple[Tensor, Tensor, Tensor],
    grad_var: Tensor,
) -> tuple[LogInterval, tuple[float, float], float]:
    """The intervals of every s_j² (``grad_var [P]``) and of their sum (the trace), and the
    trace's κ̂, from the groups' moments and their pooled ``(total, mean, m2)``."""
    P = grad_var.numel()
    rest, rest_m2 = leave_one_group_out(count, mean, m2, *pooled)
    rest_var = rest_m2[:, :P] / (rest - 1).clamp(min=1).unsqueeze(1)
    usable = (count > 0) & (rest > 1)
    n = int(pooled[0])
    coordinate = jackknife_log_interval(grad_var, rest_var, usable, n)
    trace = grad_var.sum().reshape(1)
    low, high, kurtosis, _ = jackknife_log_interval(trace, rest_var.sum(1, keepdim=True), usable, n)
    return coordinate, (float(low[0]), float(high[0])), float(kurtosis[0])


def _bias_test(
    bias: Tensor,
    grad_var: Tensor,
    n: int,
    reference: Tensor,
    eps: float,
    reference_se: Tensor | None,
    reference_df: float,
) -> tuple[Tensor, Tensor, float, float]:
    """(bias_se ``[P]``, z ``[P]``, max z, Bonferroni p) of the bias b = ḡ − g*."""
    run_error = grad_var / max(n, 1)
    bias_se = run_error.sqrt()
    degrees_of_freedom = float(n - 1)
    if reference_se is not None:
        bias_se = torch.sqrt(run_error + reference_se**2)
        degrees_of_freedom = welch_degrees_of_freedom(
            run_error, n - 1, reference_se**2, reference_df
        )
    z = bias_z(bias, bias_se, reference, eps)
    defined = z[~torch.isnan(z)]
    z_max = float(defined.max()) if defined.numel() else NAN
    tail = student_t.two_sided_p(z_max, degrees_of_freedom) if n > 1 else NAN
    bias_p = min(1.0, defined.numel() * tail) if defined.numel() else NAN
    return bias_se, z, z_max, bias_p


def _signal_to_noise(reference_norm: float, variance: float) -> float:
    """‖g*‖ / √variance: ∞ for an exact estimator of a nonzero gradient, NaN for 0/0."""
    if variance > 0:
        return reference_norm / math.sqrt(variance)
    return NAN if reference_norm == 0 or math.isnan(variance) else math.inf
