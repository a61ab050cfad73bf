"""Views of literal records: the best mark, the bias verdict and the Markdown table."""

from __future__ import annotations

import math
import stat

from gradbench.records.comparison import COLUMNS, Comparison
from gradbench.records.files import write_atomic
from gradbench.records.ranking import mark_best
from gradbench.report.format import bias_cell, duration, number, objective_labels
from gradbench.report.tables import markdown_table

NAN = math.nan


def row(estimator: str, variance: float, seconds: float, bias_p: float = 0.5, **extra) -> dict:
    record = dict.fromkeys(COLUMNS, NAN)
    record.update(
        objective="toy",
        estimator=estimator,
        status="ok",
        reason="",
        best=False,
        n_samples=1000,
        n_used=1000,
        seed=0,
        device="cpu",
        device_name="test cpu",
        dtype="float64",
        evals_per_sample=1,
        declared_unbiased=True,
        warnings="",
        true_grad_norm=1.0,
        variance=variance,
        variance_ci_low=variance * 0.9,
        variance_ci_high=variance * 1.1,
        bias_norm=0.01,
        bias_p=bias_p,
        mse=variance,
        mse_se=0.1,
        snr=1 / math.sqrt(variance) if variance > 0 else math.inf,
        cosine=0.5,
        cosine_se=0.01,
        sign_error=0.25,
        sign_error_se=0.01,
        time_per_sample_s=seconds,
        time_per_sample_min_s=seconds * 0.95,
        time_per_sample_max_s=seconds * 1.05,
        work_variance=variance * seconds,
        evals_variance=variance,
    )
    record.update(extra)
    return record


def test_best_is_the_lowest_unbiased_work_variance_with_ties_within_noise():
    rows = [
        row("slow", 1.0, 1e-6),  # 1e-6, range [9e-7, 1.1e-6]
        row("fast", 1.0, 1e-7),  # leader: 1e-7, range [9e-8, 1.1e-7]
        row("tied", 1.05, 1e-7),  # range [9.45e-8, 1.16e-7] overlaps the leader's
        row("apart", 1.3, 1e-7),  # range [1.17e-7, 1.43e-7] does not
        row("biased", 0.01, 1e-7, bias_p=1e-5),  # lowest, but its bias is significant
        row("shrunk", 0.01, 1e-7, declared_unbiased=False),  # lowest, but biased by design
        row("skipped", NAN, NAN, status="skipped", reason="requires rsample"),
    ]
    mark_best(rows)
    assert [r["estimator"] for r in rows if r["best"]] == ["fast", "tied"]


def test_no_star_rests_on_an_unstable_timing_or_on_too_few_estimates():
    # A stable leader and a slower rival whose repeats are stable: the leader alone.
    rows = [row("fast", 1.0, 1e-7), row("slow", 1.0, 1e-6)]
    mark_best(rows)
    assert [r["best"] for r in rows] == [True, False]
    # The rival's repeats run from 2e-8 to 1e-6 around a median of 1e-6: it could be the best,
    # so the ranking is undecided and nobody gets the ★.
    rows = [
        row("fast", 1.0, 1e-7),
        row("noisy", 1.0, 1e-6, time_per_sample_min_s=2e-8, time_per_sample_max_s=1.1e-6),
    ]
    mark_best(rows)
    assert not any(r["best"] for r in rows)
    # An unstable row that cannot be the best (its fastest repeat is still 10× slower) does not
    # withhold the ★ from the leader, and does not get one.
    rows = [
        row("fast", 1.0, 1e-7),
        row("noisy", 1.0, 1e-5, time_per_sample_min_s=1e-6, time_per_sample_max_s=2e-5),
    ]
    mark_best(rows)
    assert [r["best"] for r in rows] == [True, False]
    # Fewer estimates than the reliable number: no ★ at all.
    rows = [row("fast", 1.0, 1e-7, n_used=2), row("slow", 1.0, 1e-6, n_used=2)]
    mark_best(rows)
    assert not any(r["best"] for r in rows)


def test_rows_ranked_alone_are_ranked_again_together():
    """A sweep's tasks each rank one pair, so every candidate arrives with best=True; ranked
    together, only the leader keeps it."""
    rows = [row("fast", 1.0, 1e-7, best=True), row("slow", 1.0, 1e-5, best=True)]
    mark_best(rows)
    assert [r["best"] for r in rows] == [True, False]


def test_a_row_without_n_used_is_no_candidate():
    """A saved table from before n_used existed reads it as undefined: no ★, no error."""
    rows = [row("fast", 1.0, 1e-7, n_used=None), row("slow", 1.0, 1e-6, n_used=NAN)]
    mark_best(rows)
    assert not any(r["best"] for r in rows)


def test_a_run_too_short_for_its_kurtosis_earns_no_star():
    """n = 1000 trusts the interval up to κ̂ = 10 (n ≥ 100·κ̂): κ̂ = 11 earns no ★ and leaves
    it to the next; an undefined κ̂ (a saved table from before the column) is not held
    against a row."""
    rows = [row("fast", 1.0, 1e-7, variance_kurtosis=11.0), row("slow", 1.0, 1e-6)]
    mark_best(rows)
    assert [r["best"] for r in rows] == [False, True]
    rows = [row("fast", 1.0, 1e-7, variance_kurtosis=10.0), row("slow", 1.0, 1e-6)]
    mark_best(rows)
    assert [r["best"] for r in rows] == [True, False]


def test_best_is_decided_per_configuration_and_configurations_are_labelled():
    rows = [
        row("a", 1.0, 1e-7, setting_k=1.0),
        row("b", 4.0, 1e-7, setting_k=1.0),
        row("a", 9.0, 1e-7, setting_k=2.0),
        row("b", 4.0, 1e-7, setting_k=2.0),
    ]
    mark_best(rows)
    assert [r["best"] for r in rows] == [True, False, False, True]
    assert objective_labels(rows) == ["toy k=1", "toy k=1", "toy k=2", "toy k=2"]
    assert objective_labels(rows[:2]) == ["toy", "toy"]


def test_bias_verdicts():
    assert bias_cell(row("a", 1.0, 1.0, bias_p=0.2)) == "0.01 (n.s.)"
    assert bias_cell(row("a", 1.0, 1.0, bias_p=3e-7)) == "0.01 (p=3e-7)"
    assert bias_cell(row("a", 1.0, 1.0, bias_p=NAN)) == "0.01"  # fewer than two estimates
    estimated = row("a", 1.0, 1.0, bias_p=0.2, reference_se_max=0.003)
    assert bias_cell(estimated) == "0.01 (n.s., ref ±0.003)"


def test_number_and_duration_formats():
    assert [number(x) for x in (NAN, math.inf, 123456.0, 0.000123456)] == [
        "—",
        "∞",
        "1.23e5",
        "0.000123",
    ]
    assert [duration(x) for x in (2.5, 2.5e-3, 2.5e-6, 2.5e-9, NAN)] == [
        "2.5 s",
        "2.5 ms",
        "2.5 µs",
        "2.5 ns",
        "—",
    ]


def test_markdown_golden():
    rows = [
        row("fast", 2.0, 1e-7, best=True),
        row("skipped", NAN, NAN, status="skipped", reason="requires rsample"),
    ]
    text = markdown_table(Comparison(rows=rows).table())
    lines = text.splitlines()
    assert lines[0] == (
        "| objective | estimator | evals | variance [95% CI] | bias ‖ḡ−g*‖ | MSE | SNR | cosine"
        " | sign error | evals×variance | time/estimate | work×variance |"
    )
    assert lines[2] == (
        "| toy | ★ fast | 1 | 2 [1.8, 2.2] | 0.01 (n.s.) | 2 ± 0.1 | 0.707 | 0.5 ± 0.01"
        " | 0.25 ± 0.01 | 2 | 100 ns | 2e-7 |"
    )
    assert lines[3] == "| toy | (skipped) |  | skipped |  |  |  |  |  |  |  |  |"
    assert lines[5].startswith("n = 1000, seed 0, cpu (test cpu), float64.")


def test_written_files_get_the_mode_of_a_plain_open(tmp_path):
    plain, atomic = tmp_path / "plain.csv", tmp_path / "atomic.csv"
    plain.write_text("a\n")
    write_atomic(atomic, "a\n")
    assert atomic.read_text() == "a\n"
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.csv", "plain.csv"]


def test_a_mean_shows_the_decimals_its_standard_error_resolves():
    """Values apart by more than their errors read apart (−17.974 and −18.006, not −18)."""
    from gradbench.report.format import value_with_se

    assert value_with_se(-17.974, 0.000114) == "-17.97400 ± 0.00011"
    assert value_with_se(-19.693, 0.358) == "-19.69 ± 0.36"
    assert value_with_se(-67.68, 0.05) == "-67.680 ± 0.05"
    assert value_with_se(-18.006, 0.0) == "-18.006 ± 0"  # every seed at the same value
    assert value_with_se(250.0, 30.0) == "250 ± 30"  # three significant figures at least
    assert value_with_se(-18.1, math.nan) == "-18.1"  # one seed: no error
    assert value_with_se(1e-5, 1e-7) == "1e-5 ± 1e-7"  # outside the fixed-point range
