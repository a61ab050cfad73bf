"""The streaming accumulator of per-sample gradient estimates (see :mod:`gradbench.stats.summary`
for what it yields)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradbench.stats.moments import chan_merge
from gradbench.stats.summary import (
    COSINE,
    PER_SAMPLE_COLUMNS,
    SIGN_ERROR,
    SQUARED_ERROR,
    Summary,
    summarise,
)

#: Groups of the jackknife. 64 gives an interval whose own standard error is ~9% of its width.
DEFAULT_GROUPS = 64


def group_count(n_total: int, groups: int = DEFAULT_GROUPS) -> int:
    """The groups G of a run of ``n_total`` estimates: ``groups``, fewer below that many."""
    return max(1, min(groups, n_total))


def state_bytes(grad_dim: int, n_total: int) -> int:
    """Bytes of the accumulator's per-group moments (count, mean, M2 of P + 3 columns) for a
    run of ``n_total`` estimates, twice: a chunk's merge builds the new state beside the old."""
    return 2 * 8 * group_count(n_total) * (1 + 2 * (grad_dim + PER_SAMPLE_COLUMNS))


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
        self.groups = group_count(n_total, groups)
        width = self.reference.numel() + PER_SAMPLE_COLUMNS
        self.count = torch.zeros(self.groups, 1, dtype=torch.float64, device=device)
        self.mean = torch.zeros(self.groups, width, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(self.groups, width, dtype=torch.float64, device=device)
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=device)
        self.added = 0
        self.eps = torch.finfo(torch.float64).eps  # of the estimates' dtype, set by add()
        # Moments are kept of values − shift (the first finite estimate): a column that is
        # constant then has M2 exactly 0, and large offsets lose no precision.
        self.shift = torch.zeros(width, dtype=torch.float64, device=device)

    def add(self, estimates: Tensor) -> None:
        """Fold the next chunk of estimates ``[m, P]`` (samples ``added … added + m − 1``).

        Per block of rows (:func:`block_rows`), one float64 buffer: the per-sample columns,
        then the values less one shift; per-group sums of the values and of their squares,
        which add across blocks since every block has the same shift; then one Chan merge of
        all G groups at once. Nothing is read back to the host. The state changes only when
        the whole chunk is folded, so a chunk that fails (out of memory, say) can be retried.
        """
        m = estimates.shape[0]
        if self.added + m > self.n_total:
            raise ValueError(f"more than n_total={self.n_total} estimates added")
        shift = self._first_shift(estimates) if self.added == 0 else self.shift
        width = estimates.shape[1] + PER_SAMPLE_COLUMNS
        device = estimates.device
        count = torch.zeros(self.groups + 1, 1, dtype=torch.float64, device=device)
        power_sums = torch.zeros(2, self.groups + 1, width, dtype=torch.float64, device=device)
        sums = (count, power_sums[0], power_sums[1])
        rows = block_rows(estimates.shape[1], device)
        for start in range(0, m, rows):
            self._add_block(sums, estimates[start : start + rows], self.added + start, shift)
        count, total, squares = (part[:-1] for part in sums)
        mean = total / count.clamp(min=1)
        # Σd² − n·mean² of values already shifted by a sample: no cancellation to speak of.
        m2 = (squares - total * mean).clamp_(min=0.0)
        merged = chan_merge(self.count, self.mean, self.m2, count, mean, m2)
        self.count, self.mean, self.m2 = merged
        self.nonfinite = self.nonfinite + (m - count.sum()).to(torch.int64)
        self.shift = shift
        self.eps = max(self.eps, torch.finfo(estimates.dtype).eps)
        self.added += m

    def _add_block(
        self, sums: tuple[Tensor, Tensor, Tensor], estimates: Tensor, first: int, shift: Tensor
    ) -> None:
        """Add to ``sums`` (rows ``[G + 1, 1]``, Σ values and Σ values² ``[G + 1, P + 3]``) a block
        of estimates ``[b, P]``, samples ``first … first + b − 1``, values less ``shift``.

        Rows with a NaN or ∞ go to a spare group G, which the caller drops: index_add_ then
        needs no pass to mask them. The one-hot product multiplies every row (0·NaN = NaN),
        so on a GPU they are zeroed first. On the CPU, where reading ``finite`` back costs
        nothing, a block of finite rows in one group is summed by plain column sums."""
        values, finite = self._shifted_values(estimates, shift)
        b = values.shape[0]
        group, last = (self.groups * row // self.n_total for row in (first, first + b - 1))
        if adds_by_index(values.device) and group == last and bool(finite.all()):
            sums[0][group] += b
            sums[1][group] += values.sum(dim=0)
            sums[2][group] += values.square_().sum(dim=0)
            return
        ids = torch.where(finite, self._group_ids(first, b, values.device), self.groups)
        if adds_by_index(values.device):
            parts = index_sums(values, ids, self.groups + 1)
        else:
            values.masked_fill_(~finite.unsqueeze(1), 0.0)
            parts = onehot_sums(values, ids, self.groups + 1)
        for total, part in zip(sums, parts, strict=True):
            total += part

    def _first_shift(self, estimates: Tensor) -> Tensor:
        """The shift ``[P + 3]``: the first row of the first chunk whose coordinates are all
        finite (zeros where none is), with its per-sample columns; found on the device."""
        row = torch.argmax(estimates.isfinite().all(dim=1).to(torch.int8))
        first = estimates.index_select(0, row.reshape(1))  # no read-back of ``row``
        zeros = torch.zeros(
            first.shape[1] + PER_SAMPLE_COLUMNS, dtype=torch.float64, device=first.device
        )
        values, finite = self._shifted_values(first, zeros)
        return torch.where(finite.unsqueeze(1) & values.isfinite(), values, 0.0).squeeze(0)

    def _shifted_values(self, estimates: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
        """``[b, P + 3]`` float64 values − shift: d_i = g_i − s, then ‖g_i − g*‖², cos(g_i, g*)
        and 1[g_i · g* < 0], each less its shift; and the rows that are finite ``[b]``.

        Each column from its own difference, never by expanding a square: g·g* and ‖g‖ from
        g (an estimate of exactly 0 has g·g* = 0 exactly), ‖g − g*‖² from g − g*, d from g − s
        (exact for the estimates near the shift), in one [b, P] buffer."""
        b, width = estimates.shape
        ref = self.reference
        values = torch.empty(
            b, width + PER_SAMPLE_COLUMNS, dtype=torch.float64, device=estimates.device
        )
        d = values[:, :width]
        d.copy_(estimates)
        dot = d @ ref
        norm = torch.linalg.vector_norm(d, dim=1) * torch.linalg.vector_norm(ref)
        squared = torch.linalg.vector_norm(d.sub_(ref), dim=1).square()  # ‖g − g*‖²
        torch.sub(estimates, shift[:width], out=d)
        values[:, width + SQUARED_ERROR] = squared
        values[:, width + COSINE] = torch.where(norm > 0, dot / norm, 0.0)
        values[:, width + SIGN_ERROR] = dot < 0
        values[:, width:].sub_(shift[width:])
        # ‖g − g*‖² is NaN or ∞ when a coordinate is (or its square overflows float64, for
        # estimates more than ~1e154 from g*).
        return values, squared.isfinite()

    def _group_ids(self, first: int, m: int, device: torch.device) -> Tensor:
        """The group ⌊i·G/N⌋ of each sample i = first … first + m − 1 ``[m]``, made on the
        device."""
        rows = torch.arange(first, first + m, device=device)
        return torch.div(rows * self.groups, self.n_total, rounding_mode="floor")

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


#: Bytes of float64 values a block of :meth:`GradientStatistics.add` holds on the CPU: small
#: enough to stay in cache and for the allocator to reuse (a chunk-sized buffer is mapped
#: afresh each time, and faulting its pages in costs more than the arithmetic).
CPU_BLOCK_BYTES = 2 * 2**20


def block_rows(grad_dim: int, device: torch.device) -> int:
    """Rows of a block of :meth:`GradientStatistics.add`: about :data:`CPU_BLOCK_BYTES` of
    float64 values (at least 16 rows) on the CPU; the whole chunk on a GPU, where one kernel
    per operation over the chunk is what is fast."""
    if device.type != "cpu":
        return 2**62
    return max(16, CPU_BLOCK_BYTES // (8 * (grad_dim + PER_SAMPLE_COLUMNS)))


def adds_by_index(device: torch.device) -> bool:
    """Whether group sums on ``device`` use ``index_add_`` (deterministic on the CPU only)."""
    return device.type == "cpu"


def index_sums(values: Tensor, ids: Tensor, groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rows ``[G, 1]``, Σ values and Σ values² ``[G, W]`` of each group ``ids [m]``, by
    ``index_add_``: one pass, deterministic on the CPU (on a GPU it adds atomically, in no
    fixed order)."""
    zeros = torch.zeros(groups, values.shape[1], dtype=values.dtype, device=values.device)
    count = torch.bincount(ids, minlength=groups).to(values.dtype).unsqueeze(1)
    total = zeros.index_add(0, ids, values)
    return count, total, zeros.index_add_(0, ids, values * values)


def onehot_sums(values: Tensor, ids: Tensor, groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """The sums of :func:`index_sums` as one matrix product: a one-hot matrix of the groups
    ``[G, m]`` times [1, values, values²] ``[m, 1 + 2W]``. Deterministic on every device
    (the GPU path: a seed then repeats its numbers exactly)."""
    onehot = (torch.arange(groups, device=ids.device).unsqueeze(1) == ids).to(values.dtype)
    ones = torch.ones(values.shape[0], 1, dtype=values.dtype, device=values.device)
    sums = onehot @ torch.cat([ones, values, values * values], dim=1)
    width = values.shape[1]
    return sums[:, :1], sums[:, 1 : 1 + width], sums[:, 1 + width :]
