"""The ranking of a comparison: which estimators earn the ★, and which biases are significant.

Among the ok rows of one objective configuration, the ★ goes to the estimators that are unbiased
by design, show no significant bias and ran at least the reliable number of estimates, and
enough for their variance interval to hold (n ≥ 100·κ̂, :mod:`gradbench.stats.intervals`), with
the lowest work×variance (variance × seconds per estimate) or a range that overlaps the lowest
one's. A timing whose repeats disagree (:func:`gradbench.engine.timing.instability`) earns no
★, and withholds it from the others where it could be the best. Biased estimators compare on
MSE instead.
"""

from __future__ import annotations

import math

import pandas as pd

from gradbench.core.status import Status
from gradbench.engine.run import MIN_RELIABLE_SAMPLES
from gradbench.engine.timing import instability
from gradbench.stats.intervals import interval_is_trusted

#: A bias with a Bonferroni p-value below this is "distinguishable from zero".
BIAS_SIGNIFICANCE = 0.01


def bias_is_significant(row: dict) -> bool:
    """Whether a row's bias is distinguishable from zero, at :data:`BIAS_SIGNIFICANCE`."""
    return row["bias_p"] < BIAS_SIGNIFICANCE  # False when undefined (NaN)


def timing_is_stable(row: dict) -> bool:
    """Whether the row's timing repeats agree (:func:`gradbench.engine.timing.instability`)."""
    return not instability(
        row["time_per_sample_s"], row["time_per_sample_min_s"], row["time_per_sample_max_s"]
    )


def _work_variance_range(row: dict) -> tuple[float, float]:
    """work_variance over the variance interval; at the median time per estimate for a stable
    timing (the extremes of a few repeats on a shared machine are too wide to separate
    anything), and from the fastest to the slowest repeat for an unstable one."""
    if timing_is_stable(row):
        fastest = slowest = row["time_per_sample_s"]
    else:
        fastest, slowest = row["time_per_sample_min_s"], row["time_per_sample_max_s"]
    low, high = row["variance_ci_low"] * fastest, row["variance_ci_high"] * slowest
    return (row["work_variance"], row["work_variance"]) if math.isnan(low + high) else (low, high)


def configuration(row: dict) -> tuple:
    """An objective with its settings: the rows of one configuration compete for ``best``."""
    settings = tuple(
        (key.removeprefix("setting_"), value)
        for key, value in row.items()
        if key.startswith("setting_") and not (isinstance(value, float) and math.isnan(value))
    )
    return (row["objective"], settings)


def is_candidate(row: dict) -> bool:
    """Whether a row competes for the ★: measured and timed, unbiased by design, no
    significant bias, at least the reliable number of estimates, and a variance interval that
    can be trusted at its n (:func:`gradbench.stats.intervals.interval_is_trusted`)."""
    measured = row["status"] == Status.OK and not math.isnan(row["work_variance"])
    used = row.get("n_used")
    kurtosis = row.get("variance_kurtosis", math.nan)  # absent from older result files
    reliable = (
        measured
        and not pd.isna(used)
        and used >= MIN_RELIABLE_SAMPLES
        and interval_is_trusted(used, math.nan if pd.isna(kurtosis) else kurtosis)
    )
    return reliable and row["declared_unbiased"] and not bias_is_significant(row)


def mark_best(rows: list[dict]) -> None:
    """Per objective configuration, among the candidates (:func:`is_candidate`) whose timing is
    stable, mark the lowest work_variance and every row whose work_variance range overlaps its
    range (a tie within the noise). Variance alone would reward a biased estimator for
    shrinking its estimates; those compete on the MSE column instead. No ★ is awarded where a
    candidate with an unstable timing could be the best (its range reaches the leader's): the
    ranking is then undecided."""
    by_configuration: dict[tuple, list[dict]] = {}
    for row in rows:
        row["best"] = False  # a sweep re-ranks rows that each task ranked alone
        if is_candidate(row):
            by_configuration.setdefault(configuration(row), []).append(row)
    for candidates in by_configuration.values():
        stable = [row for row in candidates if timing_is_stable(row)]
        if not stable:
            continue
        leader = min(stable, key=lambda r: r["work_variance"])
        leader_high = _work_variance_range(leader)[1]
        contenders = [row for row in candidates if _work_variance_range(row)[0] <= leader_high]
        if all(timing_is_stable(row) for row in contenders):
            for row in contenders:
                row["best"] = True
