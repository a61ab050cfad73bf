"""The streaming accumulator of per-sample gradient estimates (see :mod:`gradbench.stats.summary`
for what it yields)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradbench.stats.fused import sample_columns, shifted_values
from gradbench.stats.moments import chan_merge
from gradbench.stats.summary import PER_SAMPLE_COLUMNS, Summary, summarise

#: Groups of the jackknife. 64 gives an interval whose own standard error is ~9% of its width.
DEFAULT_GROUPS = 64


def group_count(n_total: int, groups: int = DEFAULT_GROUPS) -> int:
    """The groups G of a run of ``n_total`` estimates: ``groups``, fewer below that many."""
    return max(1, min(groups, n_total))


def state_bytes(grad_dim: int, n_total: int) -> int:
    """Bytes of the accumulator's per-group moments (count, mean, M2 of P + 3 columns) for a
    run of ``n_total`` estimates, twice: a GPU chunk's merge builds the new state beside the
    old (the CPU's merges in place and is planned the same, so its chunks, and draws, stay)."""
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

        Per group the chunk touches, the count, Σ v and Σ v² of its values less one shift
        (:mod:`gradbench.stats.fused`), merged into the group's moments (Chan): on the CPU in
        one compiled loop over the chunk that merges in place (:mod:`gradbench.stats.cpu_fold`);
        on a GPU from one pass over the chunk and a one-hot product. Nothing is read back to
        the host. The state changes only when the whole chunk is folded (the CPU's loop
        makes its buffers before its first write and cannot fail part-way), so a chunk that
        fails (out of memory, say) can be retried.
        """
        m = estimates.shape[0]
        if self.added + m > self.n_total:
            raise ValueError(f"more than n_total={self.n_total} estimates added")
        reference = self.reference.to(estimates.dtype)
        shift = self.shift
        if self.added == 0:
            shift = first_shift(estimates, reference, torch.linalg.vector_norm(reference))
        merge = self._merge_segments if sums_by_segments(estimates.device) else self._merge_onehot
        kept = merge(estimates, reference, shift)
        self.nonfinite = self.nonfinite + (m - kept)
        self.shift = shift
        self.eps = max(self.eps, torch.finfo(estimates.dtype).eps)
        self.added += m

    def _merge_segments(self, estimates: Tensor, reference: Tensor, shift: Tensor) -> int:
        """Merge a CPU chunk into the moments of the groups it touches with one
        :func:`gradbench.stats.cpu_fold.fold_into` (groups are contiguous runs of samples,
        found from integers alone); return the rows kept."""
        from gradbench.stats.cpu_fold import fold_into  # numba: only where a run folds

        segments = self._segments(self.added, len(estimates))
        return fold_into(estimates, segments, reference, shift, (self.count, self.mean, self.m2))

    def _merge_onehot(self, estimates: Tensor, reference: Tensor, shift: Tensor) -> Tensor:
        """Merge a chunk into the moments of the groups it touches from one pass over the whole
        chunk and a one-hot product (:func:`onehot_sums`; rows left out go to a spare group,
        dropped), then one Chan merge of those groups; return the rows kept (a 0-d tensor)."""
        norm = torch.linalg.vector_norm(reference)
        values, kept = shifted_values(estimates, reference, norm, shift)
        touched = self._touched(self.added, estimates.shape[0])
        ids = self._group_ids(self.added, estimates.shape[0], values.device) - touched.start
        groups = touched.stop - touched.start
        sums = onehot_sums(values, torch.where(kept, ids, groups), groups + 1)
        count, total, squares = (part[:-1] for part in sums)
        mean = total / count.clamp(min=1)
        # Σd² − n·mean² of values already shifted by a sample: no cancellation to speak of.
        m2 = (squares - total * mean).clamp_(min=0.0)
        state = (self.count, self.mean, self.m2)
        merged = chan_merge(*(part[touched] for part in state), count, mean, m2)
        for part, new in zip(state, merged, strict=True):
            part[touched] = new
        return count.sum().to(torch.int64)

    def _touched(self, first: int, m: int) -> slice:
        """The groups of samples ``first … first + m − 1``: consecutive, ⌊i·G/N⌋ of the first
        to that of the last."""
        return slice(
            self.groups * first // self.n_total, self.groups * (first + m - 1) // self.n_total + 1
        )

    def _segments(self, first: int, m: int) -> list[tuple[int, int, int]]:
        """(group, start, stop) of the rows ``start:stop`` of a chunk of samples ``first …
        first + m − 1`` that fall in each group: sample i is in group ⌊i·G/N⌋, so group g
        begins at sample ⌈g·N/G⌉."""
        segments = []
        group = self.groups * first // self.n_total
        start = first
        while start < first + m:
            next_group = -(-(group + 1) * self.n_total // self.groups)  # ⌈(g + 1)·N/G⌉
            stop = min(next_group, first + m)
            if stop > start:
                segments.append((group, start - first, stop - first))
            start, group = stop, group + 1
        return segments

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


def sums_by_segments(device: torch.device) -> bool:
    """Whether group sums on ``device`` come from sums over each group's rows of one pass over
    the chunk (:func:`gradbench.stats.cpu_fold.fold_into`, the CPU) rather than from a
    one-hot product over the chunk (a GPU: few large kernels)."""
    return device.type == "cpu"


def onehot_sums(values: Tensor, ids: Tensor, groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rows ``[G, 1]``, Σ values and Σ values² ``[G, W]`` of each group ``ids [m]`` as one
    matrix product: a one-hot matrix of the groups
    ``[G, m]`` times [1, values, values²] ``[m, 1 + 2W]``. Deterministic on every device
    (the GPU path: a seed then repeats its numbers exactly), where ``index_add_`` adds
    atomically in no fixed order."""
    onehot = (torch.arange(groups, device=ids.device).unsqueeze(1) == ids).to(values.dtype)
    ones = torch.ones(values.shape[0], 1, dtype=values.dtype, device=values.device)
    sums = onehot @ torch.cat([ones, values, values * values], dim=1)
    width = values.shape[1]
    return sums[:, :1], sums[:, 1 : 1 + width], sums[:, 1 + width :]


#: Rows of the first chunk a CPU scan for its first finite row looks at before the rest.
FIRST_ROWS = 16


def first_shift(estimates: Tensor, reference: Tensor, reference_norm: Tensor) -> Tensor:
    """The shift ``[P + 3]`` float64: the first row of the first chunk whose coordinates are
    all finite (zeros where none is), with its per-sample columns, any of them that overflow
    set to 0. On a GPU found with no read-back (a scan of the whole chunk); on the CPU, where a
    read-back is free, from the first :data:`FIRST_ROWS` rows when one of them is finite."""
    rows = estimates
    if estimates.device.type == "cpu" and bool(estimates[:FIRST_ROWS].isfinite().all(1).any()):
        rows = estimates[:FIRST_ROWS]
    row = torch.argmax(rows.isfinite().all(dim=1).to(torch.int8))
    first = estimates.index_select(0, row.reshape(1))
    values = torch.cat([first, sample_columns(first, reference, reference_norm)], 1).double()
    return torch.where(values.isfinite(), values, 0.0).squeeze(0)
