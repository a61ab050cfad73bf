"""What the accumulator folds from each estimate, in torch: the definition of the values whose
sums it keeps, computed on a GPU this way, and on the CPU by one compiled loop
(:mod:`gradbench.stats.cpu_fold`) that must equal it.

For estimates g ``[b, P]`` (float32 or float64) of one group (a segment of a chunk), the
reference g* ``[P]`` in the same dtype and a float64 shift s ``[P + 3]``:

* the per-sample columns, reduced over the P coordinates in the estimates' own dtype:
  e_i = ‖g_i − g*‖² (from the difference itself, never by expanding the square),
  c_i = g_i·g* / (‖g_i‖‖g*‖) (0 for a zero estimate) and n_i = 1[g_i·g* < 0];
* with v_i = (g_i, e_i, c_i, n_i) − s converted to float64 before the subtraction, the count,
  Σ_i v_i and Σ_i v_i² ``[P + 3]`` over the rows that are finite, accumulated in float64.

A row is left out when e_i is NaN or ∞: a coordinate is, or its squared distance to g*
overflows the estimates' dtype (beyond ~1.8·10¹⁹ in float32).

Precision: the coordinate sums are the float64 sums of float64 values, as exact as a float64
two-pass around the shift. The per-sample columns carry the dtype's rounding, a relative error
of at most about P·ε of the dtype per sample (ε = 6·10⁻⁸ in float32), the size of the
estimates' own rounding; the MSE itself comes from the coordinates
(:func:`gradbench.stats.summary.summarise`), only its standard error from e_i. The values are
differenced and squared in float64, not in the estimates' dtype, because the shift is one draw:
for a heavy-tailed estimator it can lie many standard deviations σ from the mean, and
Σd² − n·d̄² then loses ε·(d̄/σ)² of the variance, 6·10⁻² at d̄ = 1000σ in float32 and 10⁻¹⁰ in
float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradbench.stats.summary import SQUARED_ERROR


def sample_columns(estimates: Tensor, reference: Tensor, reference_norm: Tensor) -> Tensor:
    """``[b, 3]`` (e_i, c_i, n_i) of estimates ``[b, P]`` against ``reference [P]`` (same
    dtype), ``reference_norm`` = ‖g*‖ a 0-d tensor of that dtype."""
    error = torch.linalg.vector_norm(estimates - reference, dim=1).square_()
    dot = estimates @ reference
    norm = torch.linalg.vector_norm(estimates, dim=1).mul_(reference_norm)
    cosine = torch.where(norm > 0, dot / norm, 0.0)
    return torch.stack([error, cosine, (dot < 0).to(estimates.dtype)], dim=1)


def shifted_values(
    estimates: Tensor, reference: Tensor, reference_norm: Tensor, shift: Tensor
) -> tuple[Tensor, Tensor]:
    """``[b, P + 3]`` float64 v_i = (g_i, e_i, c_i, n_i) − s, zero on the rows left out, and
    which rows are kept ``[b]`` (bool)."""
    columns = sample_columns(estimates, reference, reference_norm)
    kept = columns[:, SQUARED_ERROR].isfinite()
    values = torch.cat([estimates, columns], dim=1).double() - shift
    return torch.where(kept.unsqueeze(1), values, 0.0), kept
