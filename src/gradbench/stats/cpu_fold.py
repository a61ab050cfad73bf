"""The fold of :mod:`gradbench.stats.fused` on the CPU: one compiled loop over the chunk (numba).

Each estimate g_i ``[P]`` is read once, from the chunk as the estimator left it (float32 or
float64), and everything the accumulator keeps is computed from it in float64 registers: the
per-sample columns e_i = ‖g_i − g*‖² (from the differences themselves), c_i = g_i·g* /
(‖g_i‖‖g*‖) (0 for a zero estimate), n_i = 1[g_i·g* < 0], then v_i = (g_i, e_i, c_i, n_i) − s
added to Σv and its square to Σv² ``[P + 3]`` of the row's group segment. A row is left out
when e_i is NaN or larger than the estimates' dtype can hold (the rule of
:func:`gradbench.stats.fused.shifted_values`, where e_i is computed in that dtype and
overflows to ∞). Each segment's count, mean and M2 are then merged into its group's moments in
place, by the formulas of :func:`gradbench.stats.moments.chan_merge` (Chan, Golub & LeVeque
1979) in the same order, so the CPU runs no torch kernel per chunk beyond the estimator's.

Rows are summed in order, on one thread (no thread pool to share the cores with torch's);
from :data:`WIDE` coordinates on, in blocks of :data:`BLOCK` rows whose reductions share one
pass over the coordinates and whose values are added as (v₀ + v₁) + (v₂ + v₃). Precision:
the float64 sums of float64 values, as a float64 two-pass around the shift; the per-sample
columns are float64 reductions of the estimates, where the torch implementation reduces them
in the estimates' dtype (a relative difference of at most P·ε of that dtype per sample,
ε = 6·10⁻⁸ in float32).

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

from gradbench.stats.summary import PER_SAMPLE_COLUMNS

#: Reassociating the reductions over a row's P coordinates lets LLVM vectorise them; NaN and ∞
#: keep their IEEE meaning (no ``nnan``/``ninf``), which the left-out rule needs.
_FAST_MATH = {"reassoc", "contract", "nsz"}
#: Rows a block holds: their per-sample reductions come from one pass over the coordinates,
#: and a block whose rows are all kept adds to Σv and Σv² in one more, so the sums are read
#: and written once per block, not once per row.
BLOCK = 4
#: Rows go in blocks from this many coordinates on, one by one below it: a block's
#: bookkeeping costs more than it saves on narrow rows (measured: ``docs/performance.md``).
WIDE = 16


@numba.njit(cache=True, nogil=True, fastmath=_FAST_MATH, inline="always")
def _row_reductions(row, reference):
    """‖g − g*‖², g·g*, ‖g‖² of one estimate ``row [P]``."""
    error = 0.0
    dot = 0.0
    norm2 = 0.0
    for j in range(row.shape[0]):
        x = np.float64(row[j])
        difference = x - reference[j]
        error += difference * difference
        dot += x * reference[j]
        norm2 += x * x
    return error, dot, norm2


@numba.njit(cache=True, nogil=True, fastmath=_FAST_MATH, inline="always")
def _block_reductions(g, i, reference, reductions):
    """:func:`_row_reductions` of rows ``i … i + 3`` of ``g`` into ``reductions [4, 3]``, in one
    pass over the coordinates (the four rows' reductions interleaved)."""
    r0, r1, r2, r3 = g[i], g[i + 1], g[i + 2], g[i + 3]
    e0 = e1 = e2 = e3 = d0 = d1 = d2 = d3 = n0 = n1 = n2 = n3 = 0.0
    for j in range(g.shape[1]):
        y = reference[j]
        x0, x1, x2, x3 = np.float64(r0[j]), np.float64(r1[j]), np.float64(r2[j]), np.float64(r3[j])
        a0, a1, a2, a3 = x0 - y, x1 - y, x2 - y, x3 - y
        e0, e1, e2, e3 = e0 + a0 * a0, e1 + a1 * a1, e2 + a2 * a2, e3 + a3 * a3
        d0, d1, d2, d3 = d0 + x0 * y, d1 + x1 * y, d2 + x2 * y, d3 + x3 * y
        n0, n1, n2, n3 = n0 + x0 * x0, n1 + x1 * x1, n2 + x2 * x2, n3 + x3 * x3
    reductions[0, 0], reductions[0, 1], reductions[0, 2] = e0, d0, n0
    reductions[1, 0], reductions[1, 1], reductions[1, 2] = e1, d1, n1
    reductions[2, 0], reductions[2, 1], reductions[2, 2] = e2, d2, n2
    reductions[3, 0], reductions[3, 1], reductions[3, 2] = e3, d3, n3


@numba.njit(cache=True, nogil=True, fastmath=_FAST_MATH, inline="always")
def _add_row(row, shift, total, squares):
    """Σv += v, Σv² += v² of the coordinates v = g − s of one kept ``row [P]``."""
    for j in range(row.shape[0]):
        v = np.float64(row[j]) - shift[j]
        total[j] += v
        squares[j] += v * v


@numba.njit(cache=True, nogil=True, fastmath=_FAST_MATH, inline="always")
def _add_block(g, i, shift, total, squares):
    """:func:`_add_row` of the four kept rows ``i … i + 3`` of ``g``, in one pass."""
    r0, r1, r2, r3 = g[i], g[i + 1], g[i + 2], g[i + 3]
    for j in range(g.shape[1]):
        s = shift[j]
        v0, v1 = np.float64(r0[j]) - s, np.float64(r1[j]) - s
        v2, v3 = np.float64(r2[j]) - s, np.float64(r3[j]) - s
        total[j] += (v0 + v1) + (v2 + v3)
        squares[j] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)


@numba.njit(cache=True, nogil=True, inline="always")
def _add_columns(error, dot, norm2, reference_norm, shift_columns, sums):
    """``sums`` = (Σv, Σv²) of the per-sample columns (e, c, n) − s, six floats, after one
    more kept row with reductions ‖g − g*‖², g·g*, ‖g‖²: c = g·g* / (‖g‖‖g*‖) (0 for a zero
    estimate), n = 1[g·g* < 0]."""
    norm = math.sqrt(norm2) * reference_norm
    cosine = dot / norm if norm > 0.0 else 0.0
    sign_error = 1.0 if dot < 0.0 else 0.0
    v_error = error - shift_columns[0]
    v_cosine = cosine - shift_columns[1]
    v_sign = sign_error - shift_columns[2]
    return (
        sums[0] + v_error,
        sums[1] + v_cosine,
        sums[2] + v_sign,
        sums[3] + v_error * v_error,
        sums[4] + v_cosine * v_cosine,
        sums[5] + v_sign * v_sign,
    )


@numba.njit(cache=True, nogil=True, fastmath=_FAST_MATH)
def _fold_rows(g, start, stop, reference, reference_norm, shift, limit, total, squares):
    """Add rows ``start:stop`` of ``g [m, P]`` to ``total`` and ``squares`` ``[P + 3]``;
    return how many were kept. A row is kept when ‖g − g*‖² ≤ ``limit`` holds: not NaN, nor
    beyond the estimates' dtype. Rows go in blocks of :data:`BLOCK` from :data:`WIDE`
    coordinates on, else (and the last rows) one by one. The per-sample columns' sums are
    carried in registers from row to row, in row order, and added to ``total`` and
    ``squares`` at the end: through memory, each row's six additions would wait on the last
    row's (measured: ``docs/performance.md``)."""
    coordinates = g.shape[1]
    blocks = coordinates >= WIDE
    reductions = np.empty((BLOCK, 3))
    shift_columns = (shift[coordinates], shift[coordinates + 1], shift[coordinates + 2])
    sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    kept = 0
    i = start
    while i < stop:
        if blocks and i + BLOCK <= stop:
            _block_reductions(g, i, reference, reductions)
            whole = True
            for k in range(BLOCK):
                whole = whole and reductions[k, 0] <= limit
            if whole:
                _add_block(g, i, shift, total, squares)
            for k in range(BLOCK):
                error, dot, norm2 = reductions[k, 0], reductions[k, 1], reductions[k, 2]
                if error <= limit:
                    if not whole:
                        _add_row(g[i + k], shift, total, squares)
                    sums = _add_columns(error, dot, norm2, reference_norm, shift_columns, sums)
                    kept += 1
            i += BLOCK
        else:
            error, dot, norm2 = _row_reductions(g[i], reference)
            if error <= limit:
                _add_row(g[i], shift, total, squares)
                sums = _add_columns(error, dot, norm2, reference_norm, shift_columns, sums)
                kept += 1
            i += 1
    for k in range(PER_SAMPLE_COLUMNS):
        total[coordinates + k] += sums[k]
        squares[coordinates + k] += sums[PER_SAMPLE_COLUMNS + k]
    return kept


@numba.njit(cache=True, nogil=True)
def _fold_into(g, groups, starts, stops, reference, reference_norm, shift, limit, count, mean, m2):
    """Merge the kept rows of each segment ``starts[s]:stops[s]`` of ``g`` into the moments of
    its group ``groups[s]`` in place (``count [G, 1]``, ``mean`` and ``m2 [G, P + 3]``, of
    v = values − shift), as :func:`gradbench.stats.moments.chan_merge` merges them, operation
    for operation; return how many rows were kept."""
    width = shift.shape[0]
    total = np.empty(width)
    squares = np.empty(width)
    kept = 0
    for s in range(groups.shape[0]):
        total[:] = 0.0
        squares[:] = 0.0
        n_b = _fold_rows(
            g, starts[s], stops[s], reference, reference_norm, shift, limit, total, squares
        )
        kept += n_b
        if n_b == 0:  # the merge of an empty set leaves the group as it is
            continue
        group = groups[s]
        n_a = count[group, 0]
        n = n_a + n_b
        for j in range(width):
            # Σd² − n·mean² of values already shifted by a sample: no cancellation to speak of.
            mean_b = total[j] / n_b
            m2_b = max(squares[j] - total[j] * mean_b, 0.0)
            delta = mean_b - mean[group, j]
            mean[group, j] = mean[group, j] + delta * (n_b / n)
            m2[group, j] = m2[group, j] + m2_b + delta * delta * (n_a * n_b / n)
        count[group, 0] = n
    return kept


def fold_into(
    estimates: Tensor,
    segments: list[tuple[int, int, int]],
    reference: Tensor,
    shift: Tensor,
    moments: tuple[Tensor, Tensor, Tensor],
) -> int:
    """Merge a CPU chunk ``[m, P]`` into the group moments ``(count [G, 1], mean [G, P + 3],
    m2 [G, P + 3])`` (float64, contiguous, changed in place), the rows ``start:stop`` of each
    segment ``(group, start, stop)`` into their group, against ``reference [P]`` and ``shift
    [P + 3]`` (float64); return how many rows were kept."""
    count, mean, m2 = (part.numpy() for part in moments)
    reference64 = reference.detach().to(torch.float64).contiguous().numpy()
    groups, starts, stops = np.array(segments, dtype=np.int64).reshape(-1, 3).T.copy()
    return _fold_into(
        estimates.detach().contiguous().numpy(),
        groups,
        starts,
        stops,
        reference64,
        math.sqrt(float(reference64 @ reference64)),
        shift.detach().contiguous().numpy(),
        float(torch.finfo(estimates.dtype).max),
        count,
        mean,
        m2,
    )
