"""The fold of :mod:`gradbench.stats.fused` on the CPU: one compiled loop over the chunk (numba).

Each estimate g_i ``[P]`` is read once, from the chunk as the estimator left it (float32 or
float64), and everything the accumulator keeps is computed from it in float64 registers: the
per-sample columns e_i = ‖g_i − g*‖² (from the differences themselves), c_i = g_i·g* /
(‖g_i‖‖g*‖) (0 for a zero estimate), n_i = 1[g_i·g* < 0], then v_i = (g_i, e_i, c_i, n_i) − s
added to Σv and its square to Σv² ``[P + 3]``. A row is left out when e_i is NaN or larger than
the estimates' dtype can hold (the rule of :func:`gradbench.stats.fused.shifted_values`, where
e_i is computed in that dtype and overflows to ∞).

Rows are summed in order, on one thread (no thread pool to share the cores with torch's).
Precision: the float64 sums of float64 values, as a float64 two-pass around the
shift; the per-sample columns are float64 reductions of the estimates, where the torch
implementation reduces them in the estimates' dtype (a relative difference of at most P·ε of
that dtype per sample, ε = 6·10⁻⁸ in float32).

One compiled loop, where eager PyTorch runs some twenty kernels over each block of the chunk
(3.5–4× faster on this project's CPU, ``docs/performance.md``). numba compiles it once per
machine and dtype (about a second) and keeps the machine code in its cache (``cache=True``:
beside this file, or in the user's cache directory where that is read-only); a process loads
it in about 0.1 s.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

#: Reassociating the reductions over a row's P coordinates lets LLVM vectorise them; NaN and ∞
#: keep their IEEE meaning (no ``nnan``/``ninf``), which the left-out rule needs.
_FAST_MATH = {"reassoc", "contract", "nsz"}


@numba.njit(cache=True, nogil=True, fastmath=_FAST_MATH)
def _fold_rows(g, start, stop, reference, reference_norm, shift, limit, total, squares):
    """Add rows ``start:stop`` of ``g [m, P]`` to ``total`` and ``squares`` ``[P + 3]``;
    return how many were kept."""
    coordinates = g.shape[1]
    kept = 0.0
    for i in range(start, stop):
        row = g[i]
        error = 0.0
        dot = 0.0
        norm2 = 0.0
        for j in range(coordinates):
            x = np.float64(row[j])
            difference = x - reference[j]
            error += difference * difference
            dot += x * reference[j]
            norm2 += x * x
        if not error <= limit:  # NaN, or beyond the estimates' dtype
            continue
        kept += 1.0
        for j in range(coordinates):
            v = np.float64(row[j]) - shift[j]
            total[j] += v
            squares[j] += v * v
        norm = math.sqrt(norm2) * reference_norm
        cosine = dot / norm if norm > 0.0 else 0.0
        sign_error = 1.0 if dot < 0.0 else 0.0
        for k, column in enumerate((error, cosine, sign_error)):
            v = column - shift[coordinates + k]
            total[coordinates + k] += v
            squares[coordinates + k] += v * v
    return kept


@numba.njit(cache=True, nogil=True)
def _fold_segments(
    g, starts, stops, reference, reference_norm, shift, limit, count, total, squares
):
    """Count ``[S]``, Σv and Σv² ``[S, P + 3]`` of each segment ``starts[s]:stops[s]``."""
    for s in range(starts.shape[0]):
        count[s] = _fold_rows(
            g, starts[s], stops[s], reference, reference_norm, shift, limit, total[s], squares[s]
        )


def fold_segments(
    estimates: Tensor, segments: list[tuple[int, int]], reference: Tensor, shift: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Count ``[S]``, Σv and Σv² ``[S, P + 3]`` (float64) of each segment ``(start, stop)``
    of a CPU chunk ``[m, P]`` against ``reference [P]`` and ``shift [P + 3]`` (float64)."""
    g = estimates.detach().contiguous().numpy()
    reference64 = reference.detach().to(torch.float64).contiguous().numpy()
    starts, stops = np.array(segments, dtype=np.int64).reshape(-1, 2).T.copy()
    count = np.zeros(len(segments))
    total = np.zeros((len(segments), shift.numel()))
    squares = np.zeros_like(total)
    _fold_segments(
        g,
        starts,
        stops,
        reference64,
        math.sqrt(float(reference64 @ reference64)),
        shift.detach().contiguous().numpy(),
        float(torch.finfo(estimates.dtype).max),
        count,
        total,
        squares,
    )
    return torch.from_numpy(count), torch.from_numpy(total), torch.from_numpy(squares)
