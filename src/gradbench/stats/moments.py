"""Moments of groups of samples: count, mean and M2 (sum of squared deviations) per column,
merged, pooled and left out exactly (Chan, Golub & LeVeque 1979), for any order of arrival."""

from __future__ import annotations

import torch
from torch import Tensor


def chan_merge(
    count_a: Tensor, mean_a: Tensor, m2_a: Tensor, count_b: Tensor, mean_b: Tensor, m2_b: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Merge (count, mean, M2) of two disjoint sets; counts ``[G, 1]``, the rest ``[G, W]``."""
    count = count_a + count_b
    safe = count.clamp(min=1)
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / safe)
    m2 = m2_a + m2_b + delta**2 * (count_a * count_b / safe)
    return count, mean, m2


def segment_moments(
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


def masked_segment_moments(
    values: Tensor, finite: Tensor, segments: list[tuple[int, int, int]]
) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`segment_moments`, leaving out the rows where ``finite`` is False."""
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


def pool(count: Tensor, mean: Tensor, m2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Merge G groups ``count [G], mean [G, W], m2 [G, W]`` into one ``[W]`` set."""
    total = count.sum()
    pooled_mean = (count.unsqueeze(1) * mean).sum(0) / total.clamp(min=1)
    spread = (count.unsqueeze(1) * (mean - pooled_mean) ** 2).sum(0)
    return total, pooled_mean, m2.sum(0) + spread


def leave_one_group_out(
    count: Tensor, mean: Tensor, m2: Tensor, total: Tensor, pooled_mean: Tensor, pooled_m2: Tensor
) -> tuple[Tensor, Tensor]:
    """Counts ``[G]`` and M2 ``[G, W]`` of the data without group g, for each g (reverse Chan)."""
    rest = total - count
    rest_mean = (total * pooled_mean - count.unsqueeze(1) * mean) / rest.clamp(min=1).unsqueeze(1)
    delta = mean - rest_mean
    rest_m2 = pooled_m2 - m2 - delta**2 * (count * rest / total).unsqueeze(1)
    return rest, rest_m2.clamp(min=0)
