"""``gradbench report A B``: two saved results compared pair by pair.

The statistical checks use seeded runs fixed once (gaussian-square, n = 4000, seeds 1 and 2).
A correct 95% test of "same variance" fails for 5% of seed choices per pair; these seeds were
chosen once and give ratios near 1 (reinforce 1.06 [0.73, 1.54], reparam 1.05 [0.94, 1.18]),
so the assertions hold while the engine reproduces its streams. The other checks are exact:
a file compared with itself, a variance scaled by 4 on purpose, and hand-computed literal rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from gradbench import run_comparison
from gradbench.cli import app
from gradbench.core.errors import InputError
from gradbench.records.difference import (
    BOTH_ZERO,
    FASTER,
    HIGHER,
    LOWER,
    NOT_SIGNIFICANT,
    SLOWER,
    UNDEFINED,
    compare_results,
    log_variance_se,
    time_verdict,
    variance_ratio,
)
from gradbench.records.stored import StoredResult, read_result
from gradbench.report.difference import markdown_table, note_lines, rich_table
from gradbench.report.format import number

runner = CliRunner()
ESTIMATORS = ["reinforce", "reparam"]
#: t_{0.975, 63} and z_{0.975}, computed independently (scipy.stats.t(63).ppf(0.975), norm).
T_63 = 1.998340542520741
Z = 1.959963984540054
VARIANCE_COLUMNS = ["variance", "variance_ci_low", "variance_ci_high"]


def run_csv(path: Path, seed: int) -> Path:
    run = run_comparison(["gaussian-square"], ESTIMATORS, n_samples=4000, seed=seed)
    run.write_csv(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """``a`` (seed 1), ``b`` (seed 2), ``b4`` (b with every variance ×4), ``a.json`` (a)."""
    folder = tmp_path_factory.mktemp("diff")
    a, b = run_csv(folder / "a.csv", 1), run_csv(folder / "b.csv", 2)
    scaled = pd.read_csv(b)
    scaled[VARIANCE_COLUMNS] *= 4
    scaled.to_csv(folder / "b4.csv", index=False)
    run_comparison(["gaussian-square"], ESTIMATORS, n_samples=4000, seed=1).write_json(
        folder / "a.json"
    )
    return {"a": a, "b": b, "b4": folder / "b4.csv", "a.json": folder / "a.json"}


def difference_of(files: dict[str, Path], first: str, second: str):
    return compare_results(read_result(files[first]), read_result(files[second]))


def pair(difference, estimator: str) -> dict:
    (row,) = difference.pairs[difference.pairs["estimator"] == estimator].to_dict("records")
    return row


# The computation on real runs


def test_another_seed_is_not_a_significant_change(files):
    difference = difference_of(files, "a", "b")
    assert list(difference.pairs["estimator"]) == ESTIMATORS
    assert difference.only_a.empty and difference.only_b.empty
    assert "setting_k" in difference.keys and "option_baseline" not in difference.keys
    for estimator in ESTIMATORS:
        row = pair(difference, estimator)
        assert row["variance_verdict"] == NOT_SIGNIFICANT
        assert row["variance_ratio_low"] < 1 < row["variance_ratio_high"]
        assert row["variance_ratio"] == pytest.approx(row["variance_b"] / row["variance_a"])
        assert row["time_ratio"] == pytest.approx(row["time_b"] / row["time_a"])
        assert not row["bias_changed"]


def test_a_variance_scaled_by_4_is_a_significant_increase_that_the_interval_holds(files):
    difference = difference_of(files, "a", "b4")
    for estimator in ESTIMATORS:
        row = pair(difference, estimator)
        assert row["variance_verdict"] == HIGHER and row["variance_p"] < 1e-6
        assert row["variance_ratio_low"] < 4.0 < row["variance_ratio_high"]
    backwards = difference_of(files, "b4", "a")
    assert set(backwards.pairs["variance_verdict"]) == {LOWER}


def test_a_result_against_itself_is_ratio_1_whatever_the_format(files):
    """CSV against JSON: ``k=3.0`` read from one matches ``k=3`` read from the other."""
    difference = difference_of(files, "a", "a.json")
    assert len(difference.pairs) == 2
    assert (difference.pairs["variance_ratio"] == 1.0).all()
    assert (difference.pairs["variance_p"] == 1.0).all()
    assert set(difference.pairs["variance_verdict"]) == {NOT_SIGNIFICANT}


def test_unmatched_rows_and_a_changed_bias_are_named(files, tmp_path):
    table = pd.read_csv(files["b"])
    table.loc[table["estimator"] == "reparam", "bias_p"] = 1e-5
    table.loc[len(table)] = table.iloc[0].copy()
    table.loc[len(table) - 1, "estimator"] = "mvd"
    table.to_csv(tmp_path / "b.csv", index=False)
    only_reinforce = pd.read_csv(files["a"]).query("estimator == 'reinforce'")
    only_reinforce.to_csv(tmp_path / "a.csv", index=False)
    difference = compare_results(read_result(tmp_path / "a.csv"), read_result(tmp_path / "b.csv"))
    assert list(difference.pairs["estimator"]) == ["reinforce"]
    assert note_lines(difference) == [
        f"only in B ({tmp_path / 'b.csv'}): gaussian-square × reparam, gaussian-square × mvd"
    ]
    full = compare_results(read_result(files["a"]), read_result(tmp_path / "b.csv"))
    assert pair(full, "reparam")["bias_changed"]
    assert note_lines(full)[-1].startswith("bias changed: gaussian-square × reparam: A n.s., B p=")


def test_settings_are_part_of_the_match(files, tmp_path):
    run = run_comparison(["gaussian-square"], ESTIMATORS, n_samples=500, settings={"sigma": 2.0})
    run.write_csv(tmp_path / "sigma2.csv")
    with pytest.raises(InputError, match=r"no pair of .* matches one of"):
        compare_results(read_result(files["a"]), read_result(tmp_path / "sigma2.csv"))


# The statistics on hand-built rows


def row(estimator: str = "reinforce", **values) -> dict:
    """One ok main-table row with the columns the comparison reads; ``values`` replace them."""
    defaults = {
        "objective": "toy",
        "estimator": estimator,
        "status": "ok",
        "n_samples": 4000,
        "variance": 1.0,
        "variance_ci_low": math.exp(-T_63 * 0.1),
        "variance_ci_high": math.exp(T_63 * 0.1),
        "bias_p": 0.5,
        "time_per_sample_s": 1e-6,
        "time_per_sample_min_s": 0.9e-6,
        "time_per_sample_max_s": 1.1e-6,
        "timing_repeats": 5,
    }
    return defaults | values


def literal(*rows: dict) -> StoredResult:
    return StoredResult("literal", pd.DataFrame(list(rows)))


def test_the_ratio_test_by_hand():
    """V_A = 1 with se(log V_A) = 0.1, V_B = 2 with se(log V_B) = 0.2 (intervals built with
    t_{0.975,63}): d = log 2, se_d = √0.05, z = d/se_d = 3.0998, p = erfc(z/√2) = 0.0019362."""
    a = literal(row())
    b = literal(
        row(
            variance=2.0,
            variance_ci_low=2 * math.exp(-T_63 * 0.2),
            variance_ci_high=2 * math.exp(T_63 * 0.2),
        )
    )
    (compared,) = compare_results(a, b).pairs.to_dict("records")
    se_d = math.sqrt(0.1**2 + 0.2**2)
    assert compared["variance_ratio"] == pytest.approx(2.0)
    assert compared["variance_ratio_low"] == pytest.approx(2 * math.exp(-Z * se_d))
    assert compared["variance_ratio_low"] == pytest.approx(1.2903144, rel=1e-6)
    assert compared["variance_ratio_high"] == pytest.approx(3.1000197, rel=1e-6)
    assert compared["variance_p"] == pytest.approx(0.0019361970, rel=1e-6)
    assert compared["variance_p"] == pytest.approx(math.erfc(math.log(2) / se_d / math.sqrt(2)))
    assert compared["variance_verdict"] == HIGHER
    assert compared["time_ratio"] == pytest.approx(1.0)
    assert compared["time_verdict"] == NOT_SIGNIFICANT


def test_the_log_variance_se_undoes_the_jackknife_interval():
    assert log_variance_se(math.exp(-T_63 * 0.3), math.exp(T_63 * 0.3)) == pytest.approx(0.3)
    # 10 estimates: 10 groups, t on 9 degrees of freedom (2.2621571627982053)
    t_9 = 2.2621571627982053
    assert log_variance_se(math.exp(-t_9), math.exp(t_9), groups=10) == pytest.approx(1.0)
    for low, high in [(0.0, 0.0), (math.nan, 1.0), (1.0, math.inf), (2.0, 1.0)]:
        assert math.isnan(log_variance_se(low, high))
    assert math.isnan(log_variance_se(0.5, 2.0, groups=1))


def test_a_change_within_the_noise_is_not_significant():
    # d = log 1.2 = 0.182, se_d = √0.05 = 0.224: z = 0.815, p = 0.415
    result = variance_ratio(
        1.0, math.exp(-T_63 * 0.1), math.exp(T_63 * 0.1), 1.2, 1.2 * 0.67, 1.2 / 0.67
    )
    assert result.verdict == NOT_SIGNIFICANT and result.p > 0.05
    assert result.low < 1 < result.high


def test_zero_and_undefined_variances():
    both_zero = variance_ratio(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert math.isnan(both_zero.ratio) and both_zero.verdict == BOTH_ZERO
    zero_to_positive = variance_ratio(0.0, 0.0, 0.0, 2.0, 1.0, 3.0)
    assert zero_to_positive.ratio == math.inf and zero_to_positive.verdict == HIGHER
    assert variance_ratio(2.0, 1.0, 3.0, 0.0, 0.0, 0.0).verdict == LOWER
    no_interval = variance_ratio(1.0, math.nan, math.nan, 2.0, 1.5, 2.5)
    assert no_interval.ratio == pytest.approx(2.0)
    assert math.isnan(no_interval.low) and math.isnan(no_interval.p)
    assert no_interval.verdict == UNDEFINED
    assert variance_ratio(math.nan, 0, 0, 1.0, 0.5, 2.0).verdict == UNDEFINED


def test_the_time_rule_is_overlap_of_the_ranges_of_repeats():
    assert time_verdict((1.0, 2.0), (1.5, 3.0), 5, 5) == NOT_SIGNIFICANT
    assert time_verdict((1.0, 2.0), (0.5, 0.9), 5, 5) == FASTER
    assert time_verdict((1.0, 2.0), (2.1, 3.0), 5, 5) == SLOWER
    assert time_verdict((1.0, 1.0), (2.0, 2.0), 1, 5) == UNDEFINED  # one repeat: a point
    assert time_verdict((math.nan, math.nan), (2.0, 2.0), 0, 5) == UNDEFINED  # not timed


def test_a_pair_not_ok_on_one_side_shows_its_statuses():
    a = literal(row(), row("disarm", status="skipped", variance=math.nan))
    b = literal(row(), row("disarm", status="ok"))
    difference = compare_results(a, b)
    disarm = pair(difference, "disarm")
    assert (disarm["status_a"], disarm["status_b"]) == ("skipped", "ok")
    assert math.isnan(disarm["variance_ratio"]) and disarm["variance_verdict"] == UNDEFINED
    assert "| toy × disarm | — | — | A skipped, B ok |  |  |  |" in markdown_table(difference)


def test_a_repeated_key_cannot_be_matched():
    with pytest.raises(InputError, match="repeats the row objective=toy, estimator=reinforce"):
        compare_results(literal(row(), row()), literal(row()))


# The views


def rendered(difference, width: int = 80) -> str:
    console = Console(width=width, record=True)
    console.print(rich_table(difference))
    return console.export_text()


def test_the_table_fits_80_columns_with_every_cell_whole(files):
    text = rendered(difference_of(files, "a", "b4"))
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "  reinforce" in text and "higher" in text and "[min, max]" in text


def test_long_labels_wrap_instead_of_being_cut():
    """A sweep's labels (objective with its varying axes and replicate) are long."""
    rows_a, rows_b = [], []
    for k in (1, 3):
        for replicate in (0, 1):
            extra = {"param_k": k, "setting_k": k, "replicate": replicate}
            for estimator in ("reinforce", "a-long-estimator-name"):
                rows_a.append(row(estimator, objective="gaussian-square-long", **extra))
                rows_b.append(
                    row(
                        estimator,
                        objective="gaussian-square-long",
                        variance=4.0e-7,
                        variance_ci_low=3e-7,
                        variance_ci_high=5.1e-7,
                        **extra,
                    )
                )
    difference = compare_results(literal(*rows_a), literal(*rows_b))
    text = rendered(difference)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "replicate=1" in text and "k=3" in text and number(4e-7) in text


def test_the_cli_compares_two_files_and_keeps_one_file_as_before(files, tmp_path):
    one = runner.invoke(app, ["report", str(files["a"])], env={"COLUMNS": "200"})
    assert one.exit_code == 0, one.stderr
    assert "reparam" in one.stdout and "B/A" not in one.stdout
    two = runner.invoke(app, ["report", str(files["a"]), str(files["b4"])], env={"COLUMNS": "80"})
    assert two.exit_code == 0, two.stderr
    assert "variance B/A [95% CI]" in two.stdout and "higher" in two.stdout
    assert "…" not in two.stdout
    out = tmp_path / "diff.md"
    written = runner.invoke(
        app, ["report", str(files["a"]), str(files["b"]), "--markdown", str(out)]
    )
    assert written.exit_code == 0, written.stderr
    assert f"wrote {out}" in written.stderr
    expected = markdown_table(difference_of(files, "a", "b"))
    assert out.read_text() == expected
    assert "| gaussian-square × reparam |" in expected and "| n.s. |" in expected
    help_text = runner.invoke(app, ["report", "--help"]).stdout
    assert "RESULTS_B" in help_text


def bad(*arguments: str) -> str:
    result = runner.invoke(app, ["report", *arguments])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradbench: error: "), result.stderr
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(files, tmp_path):
    assert "does not exist" in bad(str(files["a"]), str(tmp_path / "none.csv"))
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    assert "missing columns" in bad(str(files["a"]), str(tmp_path / "junk.csv"))
    other = pd.read_csv(files["b"]).assign(objective="gaussian-exp")
    other.to_csv(tmp_path / "other.csv", index=False)
    assert "no pair of" in bad(str(files["a"]), str(tmp_path / "other.csv"))
    (tmp_path / "keep.md").write_text("keep")
    assert "--overwrite" in bad(
        str(files["a"]), str(files["b"]), "--markdown", str(tmp_path / "keep.md")
    )
    assert (tmp_path / "keep.md").read_text() == "keep"
