"""Moments of groups of samples: count, mean and M2 (sum of squared deviations) per column,
merged, pooled and left out exactly (Chan, Golub & LeVeque 1979), for any order of arrival."""

from __future__ import annotations

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
