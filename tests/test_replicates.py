"""The rules that combine replicates (gradbench.stats.replicates), on hand-computed values."""

import math

import pytest
import torch

from gradbench.stats.intervals import jackknife_log_interval
from gradbench.stats.replicates import (
    combined_bias_p,
    mean_and_se,
    replicate_band,
    replicate_variance_interval,
)
from gradbench.stats.student_t import quantile


def test_combined_bias_p_is_bonferroni_over_the_defined_tests():
    assert combined_bias_p([0.004, 0.5, 0.9]) == pytest.approx(3 * 0.004)
    # An undefined p-value (a replicate whose test could not be made) is not a test: k = 2.
    assert combined_bias_p([0.004, math.nan, 0.9]) == pytest.approx(2 * 0.004)
    assert combined_bias_p([0.6, 0.7]) == 1.0
    assert math.isnan(combined_bias_p([math.nan, math.nan]))
    assert math.isnan(combined_bias_p([]))


def test_mean_and_se_and_the_band_over_replicates():
    mean, se = mean_and_se([1.0, 2.0, 6.0])
    assert mean == 3.0
    assert se == pytest.approx(math.sqrt(7 / 3))  # s² = (4 + 1 + 9) / 2 = 7, se = √(7/3)
    centre, half = replicate_band([1.0, 2.0, 6.0])
    assert centre == 3.0
    # ν = 2 has a closed-form quantile: t_p = (2p − 1) √(2 / (4p(1 − p))).
    t_975 = 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))
    assert quantile(0.975, 2) == pytest.approx(t_975, rel=1e-12)
    assert half == pytest.approx(t_975 * math.sqrt(7 / 3))
    one = replicate_band([5.0, math.nan])
    assert one[0] == 5.0 and math.isnan(one[1])


def test_the_variance_over_replicates_has_the_interval_of_one_run_with_replicates_as_groups():
    """V̄ = 2 of [1, 2, 3] leaves out 2.5, 2 and 1.5: the interval is the single-run rule's on
    those three groups; one replicate has no interval; an undefined replicate is skipped."""
    mean, low, high = replicate_variance_interval([1.0, math.nan, 2.0, 3.0], n_total=3000)
    expected = jackknife_log_interval(
        torch.tensor([2.0], dtype=torch.float64),
        torch.tensor([[2.5], [2.0], [1.5]], dtype=torch.float64),
        torch.ones(3, dtype=torch.bool),
        3000,
    )
    assert mean == 2.0
    assert (low, high) == pytest.approx((float(expected[0][0]), float(expected[1][0])))
    assert low < 2.0 < high
    single = replicate_variance_interval([4.0], n_total=1000)
    assert single[0] == 4.0 and math.isnan(single[1]) and math.isnan(single[2])
