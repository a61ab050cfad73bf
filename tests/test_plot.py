"""Figures and reports of stored results: what the panels hold, the files, and bad input.

The results are real runs (``run_comparison`` at small n) laid out in the sweep's long format
by hand: every column of ``Comparison.table()`` plus ``task``, ``replicate`` and one ``param_*``
column per swept setting. No test here is statistical: the checks compare the figure's numbers
with the table they were computed from, and exact curves with closed forms.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gradbench import run_comparison
from gradbench.cli.app import app
from gradbench.objectives.gaussian import GaussianSquare
from gradbench.records.stored import read_result
from gradbench.report.figure import exact_curves as figure_module
from gradbench.report.figure.axes import grid_ticks, tick_labels
from gradbench.report.figure.build import figure_data
from gradbench.report.format import BEST_RULE
from gradbench.report.plot import draw
from gradbench.report.tables import markdown_table
from gradbench.stats.replicates import replicate_variance_interval

ESTIMATORS = ["reinforce", "reparam", "mvd", "disarm"]  # disarm: skipped on a Gaussian
runner = CliRunner()


@pytest.fixture(autouse=True)
def coarse_curves(monkeypatch):
    monkeypatch.setattr(figure_module, "CURVE_POINTS", 21)


@pytest.fixture(scope="module")
def sweep_files(tmp_path_factory) -> tuple[Path, Path]:
    """A k × sigma sweep of gaussian-square, two replicates: main and detail CSV."""
    tables, details = [], []
    points = [(k, sigma) for k in (1.0, 3.0) for sigma in (0.5, 1.0)]
    for task, (k, sigma) in enumerate(points):
        for replicate in range(2):
            run = run_comparison(
                [GaussianSquare(k=k, sigma=sigma)],
                ESTIMATORS,
                n_samples=2000,
                seed=replicate,
                dtype="float64",
                timing_repeats=1,
            )
            extra = {"task": task, "replicate": replicate, "param_k": k, "param_sigma": sigma}
            tables.append(run.table().assign(**extra))
            details.append(run.detail_table().assign(**extra))
    folder = tmp_path_factory.mktemp("sweep")
    pd.concat(tables).to_csv(folder / "sweep.csv", index=False)
    pd.concat(details).to_csv(folder / "sweep-detail.csv", index=False)
    return folder / "sweep.csv", folder / "sweep-detail.csv"


@pytest.fixture(scope="module")
def k_sweep_files(sweep_files, tmp_path_factory) -> tuple[Path, Path]:
    """The k axis alone (sigma = 1, replicate 0): one run per point."""
    folder = tmp_path_factory.mktemp("k_sweep")
    paths = []
    for source in sweep_files:
        table = pd.read_csv(source)
        keep = (table["param_sigma"] == 1.0) & (table["replicate"] == 0)
        path = folder / source.name
        table[keep].drop(columns="param_sigma").to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def log_sweep_file(tmp_path_factory) -> Path:
    """A log scan of sigma (0.1 … 10, five values), one run per point, untimed."""
    csv = tmp_path_factory.mktemp("log_sweep") / "s.csv"
    arguments = ["sweep", "gaussian-square", "-e", "reinforce", "-e", "reparam"]
    arguments += ["--param-scan", "sigma=0.1:10:5:log", "-n", "300", "--repeats", "0"]
    result = runner.invoke(app, [*arguments, "--csv", str(csv)])
    assert result.exit_code == 0, result.stderr
    return csv


@pytest.fixture(scope="module")
def comparison_file(tmp_path_factory) -> Path:
    """A timed comparison on gaussian-square: biased (fd), unbiased, skipped (disarm). Its ★
    is set by hand (reparam and mvd), since the ranking withholds it on a machine whose timings
    disagree; the figure shows the table's ``best`` whatever decided it."""
    run = run_comparison(
        [GaussianSquare()],
        ["reinforce", "reparam", "mvd", "fd", "disarm"],
        n_samples=2000,
        timing_repeats=2,
    )
    csv = tmp_path_factory.mktemp("comparison") / "r.csv"
    table = run.table()
    table.assign(best=table["estimator"].isin(["reparam", "mvd"])).to_csv(csv, index=False)
    return csv


def panel(data, title):
    return next(p for p in data.rows[0].panels if p.title == title)


def line(panel_, key):
    return next(ln for ln in panel_.lines if ln.key == key)


def test_sweep_panels_hold_the_measured_variance_with_the_runs_interval(k_sweep_files):
    main, _ = k_sweep_files
    data = figure_data(read_result(main))
    table = pd.read_csv(main)
    assert data.x_label == "k" and not data.log_x
    assert [p.title for p in data.rows[0].panels] == ["variance", "bias", "time per estimate"]
    assert data.keys == ["reinforce", "reparam", "mvd"]
    reparam = line(panel(data, "variance"), "reparam")
    rows = table[table["estimator"] == "reparam"].sort_values("param_k")
    assert reparam.points.x.tolist() == [1.0, 3.0]
    assert reparam.points.y.tolist() == rows["variance"].tolist()
    assert reparam.points.low.tolist() == rows["variance_ci_low"].tolist()
    assert reparam.points.high.tolist() == rows["variance_ci_high"].tolist()
    assert "one run" not in data.caption and "jackknife" in data.caption
    assert data.notes[0] == "left out skipped: gaussian-square × disarm"
    assert "Left out: skipped: gaussian-square × disarm" in data.caption


def test_exact_curves_follow_the_closed_forms_densely(k_sweep_files):
    data = figure_data(read_result(k_sweep_files[0]))
    variance = panel(data, "variance")
    for key, closed in {
        # trace over (∂μ, ∂σ) at μ = σ = 1, a = 1 − k: docs/measurement.md's forms and their sum
        "reparam": lambda a: 4 + 4 * a**2 + 8,
        "reinforce": lambda a: (a**4 + 14 * a**2 + 15) + 2 * (a**4 + 30 * a**2 + 37),
    }.items():
        curve = line(variance, key)
        assert len(curve.exact_x) == 21  # the dense grid (it holds the measured k = 1, 3)
        expected = [closed(1 - k) for k in curve.exact_x]
        assert curve.exact_y.tolist() == pytest.approx(expected, rel=1e-9)
    assert data.has_exact and "Dashed: exact variance" in data.caption


def test_coverage_counts_the_bands_that_hold_the_exact_value(k_sweep_files):
    data = figure_data(read_result(k_sweep_files[0]))
    table = pd.read_csv(k_sweep_files[0])
    rayleigh_variance = 2 - math.pi / 2
    trace = {  # at μ = σ = 1, a = 1 − k (see test_exact_variance.py for each term)
        "reparam": lambda a: 4 + 4 * a**2 + 8,
        "reinforce": lambda a: (a**4 + 14 * a**2 + 15) + 2 * (a**4 + 30 * a**2 + 37),
        "mvd": lambda a: 16 * a**2 * rayleigh_variance / (2 * math.pi) + 4 * a**2 + 4,
    }
    held = sum(
        row.variance_ci_low <= trace[row.estimator](1 - row.param_k) <= row.variance_ci_high
        for row in table[table["status"] == "ok"].itertuples()
    )
    assert data.coverage == (held, 6)
    assert f"the bands hold the exact variance at {held} of 6 points" in data.caption


def test_replicates_give_mean_and_the_jackknife_over_replicates(sweep_files):
    main, _ = sweep_files
    data = figure_data(read_result(main))
    table = pd.read_csv(main)
    assert data.x_label == "k"  # the first swept parameter that varies
    assert "reinforce, sigma=0.5" in data.keys and "mvd, sigma=1" in data.keys
    reinforce = line(panel(data, "variance"), "reinforce, sigma=1")
    at = table[
        (table["estimator"] == "reinforce") & (table["param_sigma"] == 1) & (table["param_k"] == 3)
    ]
    mean, low, high = replicate_variance_interval(at["variance"], int(at["n_used"].sum()))
    assert reinforce.points.y[1] == pytest.approx(at["variance"].mean()) == pytest.approx(mean)
    assert (reinforce.points.low[1], reinforce.points.high[1]) == pytest.approx((low, high))
    assert "mean over 2 replicates, 95% jackknife interval over them" in data.caption


def test_x_chooses_the_swept_parameter(sweep_files):
    data = figure_data(read_result(sweep_files[0]), x="sigma")
    assert data.x_label == "sigma" and "reparam, k=3" in data.keys
    reparam = line(panel(data, "variance"), "reparam, k=3")
    # along σ at k = 3 (a = −2): 4σ² + 16 + 8σ²
    expected = [12 * s**2 + 16 for s in reparam.exact_x]
    assert reparam.exact_y.tolist() == pytest.approx(expected, rel=1e-9)


def test_detail_gives_one_variance_panel_per_coordinate(k_sweep_files):
    main, detail = k_sweep_files
    data = figure_data(read_result(main, detail))
    titles = [p.title for p in data.rows[0].panels]
    assert titles[:2] == ["variance of ∂/∂mu[0]", "variance of ∂/∂sigma[0]"]
    details = pd.read_csv(detail)
    mvd = line(panel(data, "variance of ∂/∂sigma[0]"), "mvd")
    measured = details[(details["estimator"] == "mvd") & (details["param"] == "sigma[0]")]
    assert mvd.points.y.tolist() == measured.sort_values("param_k")["variance"].tolist()
    # coupled measure-valued ∂σ: 4a² + 4σ²
    assert mvd.exact_y.tolist() == pytest.approx([4 * (1 - k) ** 2 + 4 for k in mvd.exact_x])
    assert line(panel(data, "variance of ∂/∂mu[0]"), "reparam").exact_y == pytest.approx(4.0)


def test_per_coordinate_panels_of_replicates_use_the_interval_over_replicates(sweep_files):
    """With a detail table and two replicates, each coordinate's band is the variance interval
    over the replicates, from the estimates their main rows used."""
    main, detail = sweep_files
    data = figure_data(read_result(main, detail))
    reinforce = line(panel(data, "variance of ∂/∂mu[0]"), "reinforce, sigma=1")
    table, details = pd.read_csv(main), pd.read_csv(detail)
    chosen = (details["estimator"] == "reinforce") & (details["param_sigma"] == 1)
    at = details[chosen & (details["param_k"] == 3) & (details["param"] == "mu[0]")]
    rows = table[(table["estimator"] == "reinforce") & (table["param_sigma"] == 1)]
    used = int(rows[rows["param_k"] == 3]["n_used"].sum())
    mean, low, high = replicate_variance_interval(at["variance"], used)
    assert (reinforce.points.y[1], reinforce.points.low[1], reinforce.points.high[1]) == (
        pytest.approx((mean, low, high))
    )


def test_bias_marks_significance_and_time_keeps_repeats(k_sweep_files):
    data = figure_data(read_result(k_sweep_files[0]))
    table = pd.read_csv(k_sweep_files[0]).sort_values("param_k")
    for key in data.keys:
        rows = table[table["estimator"] == key]
        bias = line(panel(data, "bias"), key).points
        assert bias.y.tolist() == rows["bias_norm"].tolist()
        assert bias.significant.tolist() == (rows["bias_p"] < 0.01).tolist()
        time = line(panel(data, "time per estimate"), key).points
        assert time.y.tolist() == rows["time_per_sample_s"].tolist()


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_command_writes_the_figure(k_sweep_files, tmp_path, suffix):
    main, detail = k_sweep_files
    out = tmp_path / f"figure{suffix}"
    result = runner.invoke(app, ["plot", str(main), "--detail", str(detail), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    content = out.read_bytes()
    if suffix == ".png":
        assert content.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert b"<svg" in content[:2000] and content.rstrip().endswith(b"</svg>")
    assert "note: left out skipped: gaussian-square × disarm" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary left


def test_compare_plot_and_report_round_trip(tmp_path):
    names = {"--csv": "r.csv", "--json": "r.json", "--markdown": "r.md", "--plot": "r.png"}
    files = {flag: tmp_path / name for flag, name in names.items()}
    arguments = ["compare", "gaussian-square", "bernoulli-toy", "-e", "reinforce", "-e", "disarm"]
    arguments += ["-n", "500", "--repeats", "1", "--wide"]
    result = runner.invoke(app, arguments + [x for f, p in files.items() for x in (f, str(p))])
    assert result.exit_code == 0, result.stderr
    assert files["--plot"].read_bytes().startswith(b"\x89PNG")
    written = files["--markdown"].read_text()
    assert "∞" in written  # disarm on bernoulli-toy: zero variance, infinite SNR
    for source in (files["--csv"], files["--json"]):
        out = tmp_path / f"{source.suffix[1:]}.md"
        result = runner.invoke(app, ["report", str(source), "--wide", "--markdown", str(out)])
        assert result.exit_code == 0, result.stderr
        assert out.read_text() == written


def test_report_renders_several_configurations_as_they_were(tmp_path):
    run = run_comparison(
        [GaussianSquare(k=1.0), GaussianSquare(k=3.0, dim=2)],
        ["reparam", "mvd"],
        n_samples=500,
        timing_repeats=1,
    )
    run.write_csv(tmp_path / "r.csv")
    run.write_json(tmp_path / "r.json")
    expected = markdown_table(run.table())
    assert "gaussian-square dim=2 k=3" in expected
    for name in ("r.csv", "r.json"):
        assert markdown_table(read_result(tmp_path / name).table) == expected


def test_a_sweeps_own_files_plot_per_coordinate(tmp_path):
    csv, detail, figure = tmp_path / "s.csv", tmp_path / "d.csv", tmp_path / "s.svg"
    arguments = ["sweep", "gaussian-square", "-e", "reparam", "-e", "mvd", "--param", "k=1,3"]
    arguments += ["-n", "500", "--repeats", "0", "--csv", str(csv), "--detail-csv", str(detail)]
    result = runner.invoke(app, [*arguments, "--plot", str(figure)])
    assert result.exit_code == 0, result.stderr
    assert b"<svg" in figure.read_bytes()[:2000]
    data = figure_data(read_result(csv, detail))
    titles = [p.title for p in data.rows[0].panels]
    assert titles == [
        "variance of ∂/∂mu[0]",
        "variance of ∂/∂sigma[0]",
        "bias",
        "time per estimate",
    ]
    assert panel(data, "time per estimate").note == "not timed"
    assert line(panel(data, "variance of ∂/∂mu[0]"), "reparam").exact_y == pytest.approx(4.0)


def test_a_file_from_an_older_version_reads_with_later_columns_empty(tmp_path):
    run = run_comparison(["gaussian-cos"], ["reparam"], n_samples=200, timing_repeats=0)
    older = run.table().drop(columns=["evals_variance", "best"])
    older.to_csv(tmp_path / "old.csv", index=False)
    table = read_result(tmp_path / "old.csv").table
    assert table["evals_variance"].isna().all() and not table["best"].any()
    assert "| gaussian-cos | reparam | 1 |" in markdown_table(table)


def test_objectives_the_axis_does_not_reach_are_left_out_and_named(tmp_path):
    csv = tmp_path / "s.csv"
    arguments = ["sweep", "gaussian-square", "bernoulli-toy", "-e", "reinforce"]
    arguments += ["--param", "sigma=0.5,1", "-n", "300", "--repeats", "0", "--csv", str(csv)]
    assert runner.invoke(app, arguments).exit_code == 0
    data = figure_data(read_result(csv))
    assert [row.title.split(":")[0] for row in data.rows] == ["gaussian-square"]
    assert "left out not swept along sigma: bernoulli-toy" in data.notes


def test_a_comparison_is_one_position_per_estimator(tmp_path):
    run = run_comparison(["gaussian-cos"], ["reinforce", "reparam"], n_samples=500)
    run.write_csv(tmp_path / "r.csv")
    data = figure_data(read_result(tmp_path / "r.csv"))
    assert data.x_label is None and data.rows[0].categories == ["reinforce", "reparam"]
    reparam = line(panel(data, "variance"), "reparam")
    assert reparam.points.x.tolist() == [1.0]
    # cos(5x) at μ = σ = 1, pathwise: ≈ 12.5 per coordinate (DESIGN's survey values)
    assert reparam.exact_y[0] == pytest.approx(25.0, rel=1e-3)
    assert "Black bar: exact variance" in data.caption


def bad(*arguments: str) -> str:
    result = runner.invoke(app, list(arguments))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradbench: error: "), result.stderr
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(k_sweep_files, tmp_path):
    main, detail = k_sweep_files
    out = str(tmp_path / "f.png")
    assert "'.pdf'" in bad("plot", str(main), "--out", str(tmp_path / "f.pdf"))
    assert "valid: .png, .svg" in bad("plot", str(main), "--out", str(tmp_path / "f"))
    assert "does not exist" in bad("plot", str(tmp_path / "none.csv"), "--out", out)
    assert "unknown suffix '.txt'" in bad("plot", str(tmp_path / "r.txt"), "--out", out)
    assert "--detail" in bad("plot", str(detail), "--out", out)
    assert "valid: k" in bad("plot", str(main), "--out", out, "--x", "sigma")
    assert "does not exist" in bad("plot", str(main), "--out", str(tmp_path / "no" / "f.png"))
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    assert "missing columns: objective" in bad("plot", str(tmp_path / "junk.csv"), "--out", out)
    assert "missing columns" in bad("report", str(tmp_path / "junk.csv"))
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert "no 'results' list" in bad("report", str(tmp_path / "junk.json"))
    (tmp_path / "rows.json").write_text('{"results": [1, 2]}')
    assert "no 'results' list" in bad("report", str(tmp_path / "rows.json"))
    table = pd.read_csv(main)
    table["variance"] = table["variance"].astype(object)
    table.loc[0, "variance"] = "abc"
    table.to_csv(tmp_path / "text.csv", index=False)
    not_numbers = bad("report", str(tmp_path / "text.csv"))
    assert "'variance' holds values that are not numbers" in not_numbers
    Path(out).write_bytes(b"keep")
    assert "--overwrite" in bad("plot", str(main), "--out", out)
    assert Path(out).read_bytes() == b"keep"
    assert "'.jpg'" in bad("compare", "gaussian-cos", "-n", "10", "--plot", str(tmp_path / "f.jpg"))


def test_missing_matplotlib_names_the_extra(k_sweep_files, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import fails
    line_ = bad("plot", str(k_sweep_files[0]), "--out", str(tmp_path / "f.png"))
    assert line_.endswith("install it with: pip install 'gradbench[plot]'")
    assert not (tmp_path / "f.png").exists()


def test_a_log_sweeps_ticks_are_its_grid_values(log_sweep_file):
    data = figure_data(read_result(log_sweep_file))
    grid = sorted(pd.read_csv(log_sweep_file)["param_sigma"].unique())
    assert data.log_x and data.x_ticks == pytest.approx(grid)
    assert data.x_tick_labels == ["0.1", "0.32", "1", "3.2", "10"]
    figure = draw(data)
    for ax in (ax for ax in figure.axes if ax.get_visible()):
        assert ax.get_xscale() == "log" and ax.get_xticks() == pytest.approx(grid)
        assert [t.get_text() for t in ax.get_xticklabels()] == data.x_tick_labels
        assert len(ax.get_xticks(minor=True)) == 0


def test_a_short_linear_grid_has_its_values_as_ticks(k_sweep_files):
    data = figure_data(read_result(k_sweep_files[0]))
    assert not data.log_x and data.x_ticks == [1.0, 3.0] and data.x_tick_labels == ["1", "3"]
    assert "Work×variance" not in data.caption and not data.rows[0].starred  # a sweep's row


def test_long_grids_are_thinned_to_a_few_ticks_with_compact_labels():
    log_grid = [10 ** (k / 3) for k in range(-6, 7)]  # 13 values, 0.01 … 100
    ticks = grid_ticks(pd.Series(log_grid).sample(frac=1, random_state=0).to_numpy(), log=True)
    assert ticks == [log_grid[i] for i in range(0, 13, 2)]  # both ends kept
    assert tick_labels(ticks) == ["0.01", "0.046", "0.22", "1", "4.6", "22", "100"]
    assert grid_ticks(pd.Series(range(20), dtype=float).to_numpy(), log=False) == []
    assert tick_labels([1.0, 1.05, 1.1]) == ["1", "1.05", "1.1"]  # distinct labels
    assert tick_labels([2.5e-7, 1e6, 0.0]) == ["2.5e-7", "1e6", "0"]
    assert tick_labels([1.0, 16.0, 256.0]) == ["1", "16", "256"]  # integers exactly


def test_a_comparison_shows_work_variance_and_stars_the_best(comparison_file):
    data = figure_data(read_result(comparison_file))
    table = pd.read_csv(comparison_file)
    ok = table[table["status"] == "ok"].set_index("estimator")
    row = data.rows[0]
    assert [p.title for p in row.panels] == [
        "variance",
        "bias",
        "time per estimate",
        "work×variance",
    ]
    work = panel(data, "work×variance")
    assert [ln.key for ln in work.lines] == row.categories == ["reinforce", "reparam", "mvd", "fd"]
    for key in row.categories:
        points, at = line(work, key).points, ok.loc[key]
        time = at["time_per_sample_s"]
        assert points.y.tolist() == [at["work_variance"]]
        assert points.y[0] == pytest.approx(at["variance"] * time, rel=1e-6)
        assert points.low[0] == pytest.approx(at["variance_ci_low"] * time)
        assert points.high[0] == pytest.approx(at["variance_ci_high"] * time)
    best = ok.index[ok["best"]].tolist()
    assert row.starred == best == ["reparam", "mvd"]
    labels = row.category_labels()
    assert [label.removeprefix("★ ") for label in labels] == row.categories
    assert [label for label in labels if label.startswith("★ ")] == [f"★ {k}" for k in best]
    assert "Work×variance: variance × median seconds per estimate" in data.caption
    assert BEST_RULE in data.caption
    assert data.x_ticks == []
    figure = draw(data)
    for ax in (ax for ax in figure.axes if ax.get_visible()):  # the ★ in every panel
        drawn = [t.get_text() for t in ax.get_xticklabels()]
        assert drawn == labels
