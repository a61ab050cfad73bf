"""The ranking of a comparison: which estimators earn the ★, and which biases are significant.

Among the ok rows of one objective configuration, the ★ goes to the estimators that are unbiased
by design and show no significant bias, with the lowest work×variance (variance × seconds per
estimate) or a range that overlaps the lowest one's. Biased estimators compare on MSE instead.
"""

from __future__ import annotations

import math

from gradbench.core.status import Status

#: A bias with a Bonferroni p-value below this is "distinguishable from zero".
BIAS_SIGNIFICANCE = 0.01


def bias_is_significant(row: dict) -> bool:
    """Whether a row's bias is distinguishable from zero, at :data:`BIAS_SIGNIFICANCE`."""
    return row["bias_p"] < BIAS_SIGNIFICANCE  # False when undefined (NaN)


def _work_variance_range(row: dict) -> tuple[float, float]:
    """work_variance over the variance interval, at the median time per estimate.

    The time is a median of repeats and is treated as known; the extremes of a few repeats
    on a shared machine are too wide to separate anything.
    """
    low = row["variance_ci_low"] * row["time_per_sample_s"]
    high = row["variance_ci_high"] * row["time_per_sample_s"]
    return (row["work_variance"], row["work_variance"]) if math.isnan(low + high) else (low, high)


def configuration(row: dict) -> tuple:
    """An objective with its settings: the rows of one configuration compete for ``best``."""
    settings = tuple(
        (key.removeprefix("setting_"), value)
        for key, value in row.items()
        if key.startswith("setting_") and not (isinstance(value, float) and math.isnan(value))
    )
    return (row["objective"], settings)


def mark_best(rows: list[dict]) -> None:
    """Per objective configuration, among ok rows of estimators that are unbiased by design and
    show no significant bias, mark the lowest work_variance and every row whose work_variance
    range overlaps its range (a tie within the noise). Variance alone would reward a biased
    estimator for shrinking its estimates; those compete on the MSE column instead."""
    by_configuration: dict[tuple, list[dict]] = {}
    for row in rows:
        measured = row["status"] == Status.OK and not math.isnan(row["work_variance"])
        if measured and row["declared_unbiased"] and not bias_is_significant(row):
            by_configuration.setdefault(configuration(row), []).append(row)
    for candidates in by_configuration.values():
        leader = min(candidates, key=lambda r: r["work_variance"])
        leader_high = _work_variance_range(leader)[1]
        for row in candidates:
            row["best"] = _work_variance_range(row)[0] <= leader_high
