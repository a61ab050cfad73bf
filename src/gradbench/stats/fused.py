"""One pass over a segment of estimates: every sum the accumulator keeps, fused into one loop.

For estimates g ``[b, P]`` (float32 or float64) of one group, the reference g* ``[P]`` in the
same dtype and a float64 shift s ``[P + 3]``:

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
(:func:`gradbench.stats.summary.summarise`), only its standard error from e_i.

On the CPU, :func:`torch.compile` (inductor's C++ backend) turns :func:`fold` into one loop
over the segment: each estimate is read once, where eager PyTorch runs about ten kernels, each
over the whole block (``docs/performance.md`` has the measurements). It compiles once per
process and dtype (seconds, cached on disk by inductor); short segments, GPUs, a machine
without a C++ compiler and ``GRADBENCH_COMPILE=0`` run the same function eagerly.
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


def sample_columns(estimates: Tensor, reference: Tensor, reference_norm: Tensor) -> Tensor:
    """``[b, 3]`` (e_i, c_i, n_i) of estimates ``[b, P]`` against ``reference [P]`` (same
    dtype), ``reference_norm`` = ‖g*‖ a 0-d tensor of that dtype."""
    error = (estimates - reference).square().sum(1)
    dot = (estimates * reference).sum(1)
    norm = estimates.square().sum(1).sqrt() * reference_norm
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
        if cls.failed or os.environ.get("GRADBENCH_COMPILE", "1") == "0":
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
    estimates: Tensor, reference: Tensor, reference_norm: Tensor, shift: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Count ``[]``, Σ v_i and Σ v_i² ``[P + 3]`` (float64) of a segment ``[b, P]`` of one
    group: compiled on the CPU where it can be, else eager (the same function)."""
    with torch.no_grad():
        rows, coordinates = estimates.shape
        compiled = _Compiled.get() if estimates.device.type == "cpu" else None
        if compiled and rows >= MIN_COMPILED_ROWS and coordinates >= MIN_COMPILED_COORDINATES:
            try:
                return compiled(estimates, reference, reference_norm, shift)
            except _Compiled.failures() as error:
                _Compiled.give_up(error)
        return _fold_in_blocks(estimates, reference, reference_norm, shift)


#: Rows of an eager block: about 2 MiB of float64 values, which stay in cache and which the
#: allocator reuses (a chunk-sized buffer is mapped afresh each time, and faulting its pages
#: in costs more than the arithmetic).
EAGER_BLOCK_BYTES = 2 * 2**20


def _fold_in_blocks(
    estimates: Tensor, reference: Tensor, reference_norm: Tensor, shift: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_fold` of a segment, block by block on the CPU (the whole segment elsewhere)."""
    if estimates.device.type != "cpu":
        return _fold(estimates, reference, reference_norm, shift)
    rows = max(16, EAGER_BLOCK_BYTES // (8 * shift.numel()))
    parts = [
        _fold(estimates[start : start + rows], reference, reference_norm, shift)
        for start in range(0, estimates.shape[0], rows)
    ]
    return tuple(torch.stack(part).sum(0) for part in zip(*parts, strict=True))
