"""One pass over a chunk of estimates: every sum the accumulator keeps, per group segment.

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

On the CPU, :func:`torch.compile` (inductor's C++ backend) turns :func:`fold` into one loop
over the segment: each estimate is read once, where eager PyTorch runs about twenty kernels
per block of the chunk (1.8–2.7× faster on this project's CPU, ``docs/performance.md``).
Compiling costs a process about 3.5 s with inductor's disk cache warm (12.5 s the first time)
and 170 MB of memory, and saves 0.5–1.2 ns per value folded, so it pays from about 3–7·10⁹
values:
:func:`worth_compiling` compiles for a run of at least :data:`COMPILE_MIN_VALUES` (n × (P + 3)),
and a process that has compiled keeps using the kernel. ``GRADBENCH_COMPILE=1`` compiles
whatever the size, ``0`` never; short segments, GPUs and a machine without a C++ compiler
run the same function eagerly.
"""

from __future__ import annotations

import os
import sys

import torch
from torch import Tensor

from gradbench.stats.summary import SQUARED_ERROR

#: Segments shorter than this run eagerly: the compiled call's fixed cost (~50 µs) would
#: dominate, and rows counts of 0 and 1 would each cost a recompilation.
MIN_COMPILED_ROWS = 64

#: Estimates of fewer coordinates run eagerly: dynamo specialises a dimension of size 1, so a
#: scalar θ would cost a compilation of its own for a few columns' worth of work.
MIN_COMPILED_COORDINATES = 2

#: Values (n × (P + 3)) from which a run compiles the fold: the compilation's cost (3.5 s,
#: inductor's cache warm) over the time it saves per value (1.2–1.5 ns when it was set, 0.5–1.2
#: ns since the eager pass got faster: the low end of the break-even), measured by
#: ``python benchmarks/accumulator_add.py`` with ``GRADBENCH_COMPILE=0`` and ``=1``.
COMPILE_MIN_VALUES = 3 * 10**9


def worth_compiling(values: int) -> bool:
    """Whether a run that folds ``values`` values should use the compiled fold on the CPU:
    ``GRADBENCH_COMPILE`` if set (1 yes, 0 no), else when the process has compiled it already
    or the run is large enough to pay for the compilation."""
    setting = os.environ.get("GRADBENCH_COMPILE", "")
    if setting in ("0", "1"):
        return setting == "1"
    return _Compiled.kernel is not None or values >= COMPILE_MIN_VALUES


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


def _fold(
    estimates: Tensor, reference: Tensor, reference_norm: Tensor, shift: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    values, kept = shifted_values(estimates, reference, reference_norm, shift)
    return kept.sum(dtype=torch.float64), values.sum(0), values.square().sum(0)


class _Compiled:
    """:func:`_fold` compiled by inductor on first use, or None where that is off or failed."""

    kernel = None
    failed = False

    @classmethod
    def get(cls):
        if cls.failed:
            return None
        if cls.kernel is None:
            cls.kernel = torch.compile(_fold, dynamic=True, fullgraph=True)
        return cls.kernel

    @staticmethod
    def failures() -> tuple[type[Exception], ...]:
        """What a failed compilation raises: no C++ compiler, too many recompilations. Looked
        up only when one is raised, since importing torch._dynamo costs about a second."""
        from torch._dynamo import exc

        return exc.TorchDynamoException, exc.FailOnRecompileLimitHit

    @classmethod
    def give_up(cls, error: Exception) -> None:
        cls.failed = True
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"gradbench: torch.compile failed ({type(error).__name__}: {reason[:120]}); the"
            " statistics run eagerly (slower, same numbers up to rounding)",
            file=sys.stderr,
        )


def fold(
    estimates: Tensor,
    reference: Tensor,
    reference_norm: Tensor,
    shift: Tensor,
    compiled: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Count ``[]``, Σ v_i and Σ v_i² ``[P + 3]`` (float64) of a segment ``[b, P]`` of one
    group: by the compiled kernel on the CPU where ``compiled`` (:func:`worth_compiling`) and
    the segment is long and wide enough, else eagerly (the same function)."""
    with torch.no_grad():
        rows, coordinates = estimates.shape
        long_and_wide = rows >= MIN_COMPILED_ROWS and coordinates >= MIN_COMPILED_COORDINATES
        kernel = None
        if compiled and long_and_wide and estimates.device.type == "cpu":
            kernel = _Compiled.get()
        if kernel is not None:
            try:
                return kernel(estimates, reference, reference_norm, shift)
            except _Compiled.failures() as error:
                _Compiled.give_up(error)
        count, total, squares = _fold_in_blocks(
            estimates, [(0, rows)], reference, reference_norm, shift
        )
        return count[0], total[0], squares[0]


def fold_segments(
    estimates: Tensor,
    segments: list[tuple[int, int]],
    reference: Tensor,
    reference_norm: Tensor,
    shift: Tensor,
    compiled: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Count ``[S]``, Σ v_i and Σ v_i² ``[S, P + 3]`` (float64) of each of the S segments
    ``(start, stop)`` of a chunk ``[m, P]``: runs of rows, one per group, in order and
    covering the chunk. Compiled, one :func:`fold` per segment; eagerly, one pass over the
    chunk (:func:`_fold_in_blocks`), whose elementwise kernels run once per block however many
    segments it holds (a run of 2000 estimates has segments of 31 rows)."""
    with torch.no_grad():
        if compiled and estimates.device.type == "cpu" and not _Compiled.failed:
            parts = [
                fold(estimates[a:b], reference, reference_norm, shift, True) for a, b in segments
            ]
            return tuple(torch.stack(column) for column in zip(*parts, strict=True))
        return _fold_in_blocks(estimates, segments, reference, reference_norm, shift)


#: Rows of an eager block: about 8 MiB of float64 values, which stay in the last-level cache and
#: which the allocator reuses (a chunk-sized buffer is mapped afresh each time, and faulting
#: its pages in costs more than the arithmetic). Each block costs some twenty kernel calls of
#: ~5-10 µs whatever its size: at 2 MiB the engine ran at 0.47-0.50× its estimates on the four
#: anchor cells, at 8 MiB at 0.48-0.54× (the engine at both in one process, interleaved,
#: medians of 5).
EAGER_BLOCK_BYTES = 8 * 2**20


def _fold_in_blocks(
    estimates: Tensor,
    segments: list[tuple[int, int]],
    reference: Tensor,
    reference_norm: Tensor,
    shift: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`fold_segments`, eagerly: on the CPU block by block in one reused float64 buffer,
    the per-sample columns and the shifted values once per block, then each segment's rows of
    the block summed as matrix-vector products (BLAS), squared in place and summed again (and
    without the mask where every row of the block is kept: reading that back is free on the
    CPU); elsewhere :func:`_fold` of each segment, with no read-back."""
    width = shift.numel()
    count = torch.zeros(len(segments), dtype=torch.float64, device=shift.device)
    total = torch.zeros(len(segments), width, dtype=torch.float64, device=shift.device)
    squares = torch.zeros_like(total)
    if estimates.device.type != "cpu":
        for s, (a, b) in enumerate(segments):
            count[s], total[s], squares[s] = _fold(estimates[a:b], reference, reference_norm, shift)
        return count, total, squares
    rows, coordinates = estimates.shape
    block = max(16, EAGER_BLOCK_BYTES // (8 * width))
    buffer = torch.empty(min(block, rows), width, dtype=torch.float64)
    ones = torch.ones(buffer.shape[0], dtype=torch.float64)
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        part = estimates[start:stop]
        columns = sample_columns(part, reference, reference_norm)
        values = buffer[: stop - start]
        values[:, :coordinates].copy_(part)
        values[:, coordinates:].copy_(columns)
        values.sub_(shift)
        kept = columns[:, SQUARED_ERROR].isfinite()
        if not bool(kept.all()):
            values.masked_fill_(~kept.unsqueeze(1), 0.0)
        # (segment, first row, end row) of the block's rows in each segment it touches
        pieces = [
            (s, max(a, start) - start, min(b, stop) - start)
            for s, (a, b) in enumerate(segments)
            if a < stop and b > start
        ]
        for s, low, high in pieces:
            count[s] += kept[low:high].sum()
            total[s].addmv_(values[low:high].T, ones[: high - low])
        values.square_()
        for s, low, high in pieces:
            squares[s].addmv_(values[low:high].T, ones[: high - low])
    return count, total, squares
