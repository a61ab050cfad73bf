"""The streaming accumulator of per-sample gradient estimates (see :mod:`gradbench.stats.summary`
for what it yields)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradbench.stats.moments import chan_merge, masked_segment_moments, segment_moments
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
        width = self.reference.numel() + PER_SAMPLE_COLUMNS
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
            count, mean, m2 = segment_moments(values, segments)
        else:
            count, mean, m2 = masked_segment_moments(values, finite, segments)
        groups = torch.tensor([group for group, _, _ in segments], device=values.device)
        merged = chan_merge(self.count[groups], self.mean[groups], self.m2[groups], count, mean, m2)
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
        values = torch.empty(
            m, width + PER_SAMPLE_COLUMNS, dtype=torch.float64, device=estimates.device
        )
        g = values[:, :width]
        g.copy_(estimates)
        dot = g @ ref
        norms = torch.linalg.vector_norm(g, dim=1) * torch.linalg.vector_norm(ref)
        values[:, width + SQUARED_ERROR] = torch.linalg.vector_norm(g - ref, dim=1) ** 2
        values[:, width + COSINE] = torch.where(norms > 0, dot / norms, 0.0)
        values[:, width + SIGN_ERROR] = dot < 0
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
