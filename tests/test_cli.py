"""The command line through typer's CliRunner: help, listing, runs, exports, bad input."""

from __future__ import annotations

import importlib
import json
import math
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from fresh_process import modules_loaded_by
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gradbench.cli.app import app
from gradbench.extend import registry
from gradbench.records.comparison import COLUMNS, DETAIL_COLUMNS

runner = CliRunner()
OBJECTIVES = [
    "gaussian-square",
    "gaussian-exp",
    "gaussian-cos",
    "bernoulli-toy",
    "categorical-toy",
    "categorical-product",
    "gamma-square",
    "beta-square",
    "dirichlet-square",
    "bayes-logreg",
    "vae-gaussian",
    "vae-bernoulli",
    "vae-categorical",
    "policy-mdp",
    "iwae-linear-gaussian",
    "iwae-discrete",
]
ESTIMATORS = ["reinforce", "reparam", "fd"]
QUICK = ["-n", "2000", "--repeats", "1"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "compare" in result.output and "list" in result.output


def test_no_command_prints_help():
    result = invoke()
    assert result.exit_code == 0 and "compare" in result.output


def test_compare_help_documents_the_contract():
    result = invoke("compare", "--help")
    assert result.exit_code == 0
    for flag in ("--estimator", "--samples", "--seed", "--device", "--dtype", "--set", "--csv"):
        assert flag in result.output
    assert "--detail-csv" in result.output and "--json" in result.output


def test_list_shows_every_built_in_with_requirements():
    result = invoke("list")
    assert result.exit_code == 0
    for name in OBJECTIVES + ESTIMATORS:
        assert name in result.output
    assert "built-in" in result.output and "rsample" in result.output and "2P" in result.output


def test_list_loads_neither_pandas_nor_scipy_nor_the_report_and_the_sweeps():
    """A fresh ``gradbench list`` imports only what it shows: the registry and the listing
    (each command imports the library it calls when it runs, docs/performance.md)."""
    script = (
        "import sys\n"
        "sys.argv = ['gradbench', 'list']\n"
        "from gradbench.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    heavy = ["pandas", "scipy", "gradbench.api", "gradbench.records.comparison",
             "gradbench.report.view", "gradbench.sweeps.orchestration"]  # fmt: skip
    output, loaded = modules_loaded_by(script, heavy)
    assert "categorical-toy" in output
    assert loaded == []


def test_the_package_exports_every_public_name_on_first_use():
    """``gradbench.X`` for each name of ``__all__`` (imported lazily) is the object of the
    module that defines it, and an unknown name is an AttributeError."""
    import gradbench

    for name in gradbench.__all__:
        assert getattr(gradbench, name) is getattr(
            importlib.import_module(gradbench._EXPORTS[name]), name
        )
    assert sorted(gradbench._EXPORTS) == sorted(gradbench.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = gradbench.no_such_name


def test_default_compare_runs_every_pair():
    result = invoke("compare", "--repeats", "1")
    assert result.exit_code == 0, result.stderr
    for name in OBJECTIVES + ESTIMATORS:
        assert name in result.stdout
    assert "skipped (" in result.stdout  # reparam on bernoulli-toy, arm on the Gaussians, …
    titles = [line for line in result.stdout.splitlines() if "  (n = " in line]
    assert sorted(line.split()[0] for line in titles) == sorted(OBJECTIVES)  # one per objective
    # Each ends in its verdict: who earns the ★, or why none does (an unstable timing, say).
    lines = result.stdout.splitlines()
    verdicts = [line for line in lines if line.startswith(("no ★", "★")) and ": " in line]
    assert len(verdicts) == len(OBJECTIVES)


def test_exports_have_the_documented_schemas(tmp_path):
    csv, detail, record = tmp_path / "t.csv", tmp_path / "d.csv", tmp_path / "t.json"
    result = invoke(
        "compare",
        "gaussian-square",
        "bernoulli-toy",
        "-e",
        "reinforce",
        "-e",
        "reparam",
        *QUICK,
        "--set",
        "dim=2",
        "--csv",
        str(csv),
        "--detail-csv",
        str(detail),
        "--json",
        str(record),
    )
    assert result.exit_code == 0, result.stderr

    table = pd.read_csv(csv)
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert {"setting_dim", "setting_mu", "setting_k", "setting_target"} <= set(table.columns)
    assert len(table) == 4
    assert table.status.tolist() == ["ok", "ok", "ok", "skipped"]
    skipped = table.iloc[3]
    assert "rsample" in skipped.reason and math.isnan(skipped.variance)
    ok = table[table.status == "ok"]
    assert (ok.n_samples == 2000).all() and (ok.dtype == "float32").all()
    assert (ok.variance_ci_low <= ok.variance).all() and (ok.variance <= ok.variance_ci_high).all()
    assert (ok.work_variance == ok.variance * ok.time_per_sample_s).all()
    assert table.grad_dim.tolist() == [4, 4, 2, 2]

    details = pd.read_csv(detail)
    assert list(details.columns) == list(DETAIL_COLUMNS)
    assert details.param.tolist()[:4] == ["mu[0]", "mu[1]", "sigma[0]", "sigma[1]"]
    assert len(details) == 4 + 4 + 2  # the skipped pair has no coordinates

    document = json.loads(record.read_text())
    assert document["schema_version"] == 1
    provenance = document["provenance"]
    assert provenance["torch_version"] == torch.__version__ and provenance["seed"] == 0
    assert provenance["arguments"]["csv"] == str(csv)
    assert provenance["arguments"]["set"] == ["dim=2"]
    assert len(document["results"]) == 4 and len(document["details"]) == 10
    assert document["results"][3]["variance"] is None  # NaN is null, never 0


def assert_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradbench: error:")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["nope"], ["'nope'", "gaussian-square", "bernoulli-toy"]),
        (["-e", "nope"], ["'nope'", "reinforce", "reparam", "fd"]),
        (["--set", "q=1"], ["'q'", "mu", "sigma", "target"]),
        (["--set", "mu1"], ["'mu1'", "KEY=VALUE"]),
        (["--set", "sigma=0"], ["sigma=", "must be > 0"]),
        (["--set", "sigma=abc"], ["'abc'", "finite number"]),
        (["--set", "dim=1.5"], ["'1.5'", "integer"]),
        (["--set", "fd.step=-1"], ["step", "must be > 0"]),
        (["--set", "nope.k=1"], ["'nope'", "gaussian-square", "fd"]),
        (["--device", "tpu"], ["'tpu'", "cpu", "cuda", "auto"]),
        (["--dtype", "float16"], ["'float16'", "float32", "float64"]),
        (["-n", "0"], ["--samples", "0 is not a positive integer"]),
        (["-n", "-5"], ["-5 is not a positive integer"]),
        (["-n", "abc"], ["'abc' is not an integer"]),
        (["--repeats", "-1"], ["--repeats", "-1 is not a non-negative integer"]),
        (["--chunk-size", "0"], ["--chunk-size", "0 is not a positive integer"]),
        (["--set", "k=-1", "gaussian-exp", "--set", "sigma=2"], ["1 + 2·k·sigma² > 0"]),
        (["gaussian-sqaure"], ["'gaussian-sqaure'", "did you mean 'gaussian-square'?"]),
        (["-e", "reinfroce"], ["'reinfroce'", "did you mean 'reinforce'?"]),
        (["--set", "sigam=2"], ["'sigam'", "did you mean 'sigma'?"]),
        (["--set", "gaussian-square.kk=2"], ["'kk'", "did you mean 'k'?"]),
        (["--seed", str(2**63)], ["--seed", "64-bit seed", str(2**63 - 1)]),
        (["--columns", "varaince"], ["--columns", "'varaince'", "did you mean 'variance'?"]),
        (["--sort", "mse_s"], ["--sort", "'mse_s'", "did you mean 'mse_se'?"]),
        (["--wide", "--columns", "mse"], ["--wide", "--columns"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragments, tmp_path):
    output = tmp_path / "out.csv"
    result = invoke("compare", *QUICK, *args, "--csv", str(output))
    assert_usage_error(result, *fragments)
    assert not output.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_usage_error(tmp_path):
    result = invoke("compare", "--device", "cuda", *QUICK)
    assert_usage_error(result, "'cuda'", "CUDA is not available", "cpu")


def test_output_in_a_missing_directory_is_refused_before_running(tmp_path):
    target = tmp_path / "missing" / "out.json"
    result = invoke("compare", *QUICK, "--json", str(target))
    assert_usage_error(result, str(target), "does not exist")
    assert result.stdout == ""


def test_output_that_is_a_directory_is_refused(tmp_path):
    result = invoke("compare", *QUICK, "--detail-csv", str(tmp_path))
    assert_usage_error(result, "--detail-csv", "is a directory")


def test_an_existing_result_is_kept_unless_overwrite(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("earlier result\n")
    result = invoke("compare", "gaussian-square", "-e", "fd", *QUICK, "--csv", str(target))
    assert_usage_error(result, str(target), "exists", "--overwrite")
    assert target.read_text() == "earlier result\n"
    args = ("compare", "gaussian-square", "-e", "fd", *QUICK, "--csv", str(target))
    replaced = invoke(*args, "--overwrite")
    assert replaced.exit_code == 0 and target.read_text().startswith("objective,")


def test_data_on_stdout_diagnostics_on_stderr(tmp_path):
    target = tmp_path / "out.csv"
    result = invoke("compare", "gaussian-square", "-e", "fd", "-n", "50", "--csv", str(target))
    assert result.exit_code == 0
    assert "gaussian-square" in result.stdout and "wrote" not in result.stdout
    assert f"wrote {target}" in result.stderr and "warning:" in result.stderr


def is_integer_at_least(text: str, minimum: int | None) -> bool:
    try:
        value = int(text)
    except ValueError:
        return False
    return minimum is None or value >= minimum


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


PRINTABLE = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
MALFORMED = {
    "--samples": PRINTABLE.filter(lambda t: not is_integer_at_least(t, 1)),
    "--seed": PRINTABLE.filter(lambda t: not is_integer_at_least(t, None)),
    "--chunk-size": PRINTABLE.filter(lambda t: not is_integer_at_least(t, 1)),
    "--repeats": PRINTABLE.filter(lambda t: not is_integer_at_least(t, 0)),
    "--device": PRINTABLE.filter(lambda t: t not in ("cpu", "auto")),
    "--dtype": PRINTABLE.filter(lambda t: t not in ("float32", "float64")),
    # KEY=NUMBER could be a valid assignment; every other shape is malformed.
    "--set": PRINTABLE.filter(lambda t: not is_number(t.partition("=")[2])),
    "--estimator": PRINTABLE.filter(lambda t: t not in registry.estimators.names()),
}
FUZZ_OUTPUT = Path(tempfile.mkdtemp()) / "never.csv"


CHECK_MALFORMED = {
    option: MALFORMED[option] for option in ("--samples", "--seed", "--device", "--dtype")
} | {"--set": PRINTABLE.filter(lambda t: not is_number(t.partition("=")[2]) or "=" not in t)}


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_every_check_option_fuzzed_fails_in_one_line(data):
    option = data.draw(st.sampled_from(sorted(CHECK_MALFORMED)))
    value = data.draw(CHECK_MALFORMED[option])
    if option == "--device" and torch.cuda.is_available():
        value = "not-a-device"
    result = invoke("check", "fd", "-n", "2000", f"{option}={value}")
    assert result.exit_code == 2, (option, value, result.stdout[-300:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradbench: error:"), (option, value, lines)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_every_option_fuzzed_fails_in_one_line(data):
    """Malformed values of every option (an unknown --set key counts): exit 2, one line, no file.

    Excluded, as not malformed: `--device cuda…` on a machine with CUDA, and `--set KEY=NUMBER`
    (KEY may be a setting).
    """
    option = data.draw(st.sampled_from(sorted(MALFORMED)))
    value = data.draw(MALFORMED[option])
    if option == "--device" and torch.cuda.is_available():
        value = "not-a-device"
    result = invoke(
        "compare", "gaussian-square", *QUICK, f"{option}={value}", "--csv", str(FUZZ_OUTPUT)
    )
    assert result.exit_code == 2, (option, value, result.stdout[-300:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradbench: error:"), (option, value, lines)
    assert "Traceback" not in result.output
    assert not FUZZ_OUTPUT.exists()


@pytest.mark.parametrize("width", [80, 120])
def test_the_default_table_fits_the_terminal_without_cutting_a_cell(width):
    """Every objective of the default suite (the model objectives at a small n), piped with
    COLUMNS set: no line is wider than the width and no cell is cut short (rich's …)."""
    result = runner.invoke(app, ["compare", *QUICK], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    assert "…" not in result.stdout
    for name in OBJECTIVES:
        assert any(line.startswith(f"{name}  (n = 2000") for line in lines)


def test_columns_and_sort_choose_what_is_shown():
    result = runner.invoke(
        app,
        ["compare", "gaussian-square", "-e", "reinforce", "-e", "reparam", *QUICK,
         "--columns", "mse,snr", "--sort", "-snr"],
        env={"COLUMNS": "80"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("estimator"))
    assert header.split() == ["estimator", "MSE", "SNR"]
    start = lines.index(header) + 1
    order = [line.lstrip("★ ").split()[0] for line in lines[start : start + 2]]
    # The pathwise estimate has the higher SNR: first in descending order of snr.
    assert order[:2] == ["reparam", "reinforce"]


def test_wide_shows_every_column():
    result = runner.invoke(
        app,
        ["compare", "gaussian-square", "-e", "reparam", *QUICK, "--wide"],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.stderr
    for header in ("SNR", "cosine", "sign error", "evals×variance", "work×variance"):
        assert header in result.stdout


def test_a_failed_pair_exits_1_after_writing_everything(tmp_path):
    """A θ too large for the memory budget fails its pair up front, with the numbers and the
    flag that helps, and the run still writes its files; the exit status is then 1."""
    csv = tmp_path / "t.csv"
    result = invoke(
        "compare", "gaussian-square", "-e", "reparam", "--set", "dim=1000000", "-n", "100",
        "--csv", str(csv),
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    table = pd.read_csv(csv)
    assert list(table.status) == ["failed"]
    reason = table.reason[0]
    assert "MemoryBudgetError" in reason and "16 estimates" in reason and "--chunk-size" in reason
    assert "1 pair(s) failed" in result.stderr
