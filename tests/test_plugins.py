"""Plugins, each way in: entry points of an installed package, --plugin module:Class,
--plugin file.py, and registration from Python; broken plugins are one line each: an error
and exit status 2 for a --plugin, a warning for an entry point nobody named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gradbench
from gradbench.cli.app import app
from gradbench.extend import plugins, registry

ROOT = Path(__file__).resolve().parents[1]
SINGLE_FILE = ROOT / "examples" / "single_file_plugin.py"
PACKAGE = ROOT / "examples" / "gradbench-antithetic"
BIASED = ROOT / "tests" / "plugins" / "biased_estimator.py"
QUICK = ["-n", "3000", "--repeats", "1"]

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_single_file_plugin_in_list_compare_and_check(tmp_path):
    spec = str(SINGLE_FILE)
    listed = invoke("list", "--plugin", spec)
    assert listed.exit_code == 0, listed.stderr
    assert "oracle-baseline" in listed.stdout
    assert registry.estimators.entries()["oracle-baseline"].origin == f"file {spec}"

    record = tmp_path / "run.json"
    compared = invoke(
        "compare", "gaussian-square", "-e", "oracle-baseline", *QUICK, "--json", str(record),
        "--plugin", spec,
    )  # fmt: skip
    assert compared.exit_code == 0, compared.stderr
    document = json.loads(record.read_text())
    assert document["results"][0]["status"] == "ok"
    (plugin,) = document["provenance"]["plugins"]
    assert plugin["spec"] == spec and plugin["kind"] == "file"
    assert plugin["version"].startswith("sha256:") and plugin["names"] == ["oracle-baseline"]

    checked = invoke("check", "oracle-baseline", "-n", "20000", "--plugin", spec)
    assert checked.exit_code == 0, checked.stdout
    assert "oracle-baseline: passed" in checked.stdout


def test_a_relative_file_plugin_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    shutil.copy(SINGLE_FILE, tmp_path / "mine" / "plugin.py")
    monkeypatch.chdir(tmp_path)
    relative = os.path.join("mine", "plugin.py")
    absolute = str(tmp_path / "mine" / "plugin.py")
    assert plugins.absolute_spec(relative) == absolute
    assert plugins.absolute_spec("gradbench.estimators.reparam:Reparam") == (
        "gradbench.estimators.reparam:Reparam"
    )
    record = tmp_path / "run.json"
    compared = invoke(
        "compare", "gaussian-square", "-e", "oracle-baseline", *QUICK, "--json", str(record),
        "--plugin", relative,
    )  # fmt: skip
    assert compared.exit_code == 0, compared.stderr
    (plugin,) = json.loads(record.read_text())["provenance"]["plugins"]
    assert plugin["spec"] == absolute and plugin["kind"] == "file"
    assert registry.estimators.entries()["oracle-baseline"].origin == f"file {absolute}"


def test_module_attribute_plugin_in_list_compare_and_check(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKAGE / "src"))
    spec = "gradbench_antithetic:AntitheticReparam"
    listed = invoke("list", "--plugin", spec)
    assert listed.exit_code == 0, listed.stderr
    assert "antithetic" in listed.stdout
    assert registry.estimators.entries()["antithetic"].origin == f"module {spec}"
    compared = invoke("compare", "gaussian-square", "-e", "antithetic", *QUICK, "--plugin", spec)
    assert compared.exit_code == 0 and "antithetic" in compared.stdout
    checked = invoke("check", "antithetic", "-n", "20000", "--plugin", spec)
    assert checked.exit_code == 0, checked.stdout


def test_registration_from_python_reaches_the_api():
    @gradbench.register_estimator
    class Halved(gradbench.Estimator):
        name = "halved-reinforce"
        description = "½ of REINFORCE (biased)"
        unbiased = False

        def estimate(self, objective, params, n, generator):
            return 0.5 * registry.estimators.get("reinforce")().estimate(
                objective, params, n, generator
            )

    assert registry.estimators.entries()["halved-reinforce"].origin == "python"
    table = gradbench.compare(["gaussian-square"], ["halved-reinforce"], n_samples=2000)
    assert table.status.tolist() == ["ok"] and table.bias_p[0] < 1e-3


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory) -> Path:
    """The example package pip-installed into a folder of its own (built from a copy, so the
    build leaves nothing in the repository)."""
    source = tmp_path_factory.mktemp("source") / PACKAGE.name
    shutil.copytree(PACKAGE, source)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return target


def run_installed(site: Path, *args: str, disable_autoload: bool = False):
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "400"}
    env.pop(plugins.AUTOLOAD_ENV, None)
    if disable_autoload:
        env[plugins.AUTOLOAD_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "gradbench", *args], env=env, capture_output=True, text=True
    )


def test_entry_points_of_an_installed_package(installed_package):
    listed = run_installed(installed_package, "list")
    assert listed.returncode == 0, listed.stderr
    assert "gaussian-quartic" in listed.stdout and "antithetic" in listed.stdout
    assert "entry point gradbench-antithetic 0.1.0" in listed.stdout
    compared = run_installed(installed_package, "compare", "gaussian-quartic", *QUICK)
    assert compared.returncode == 0, compared.stderr
    for name in ("antithetic", "reinforce", "reparam", "fd"):
        assert name in compared.stdout
    checked = run_installed(installed_package, "check", "antithetic", "-n", "20000")
    assert checked.returncode == 0, checked.stdout


def test_autoload_can_be_turned_off(installed_package):
    listed = run_installed(installed_package, "list", disable_autoload=True)
    assert listed.returncode == 0
    assert "gaussian-quartic" not in listed.stdout and "reinforce" in listed.stdout


def test_a_biased_estimator_fails_check():
    result = invoke("check", "biased-reparam", "-n", "20000", "--plugin", str(BIASED))
    assert result.exit_code == 1
    assert "biased-reparam: FAILED" in result.stdout and "fail" in result.stdout


def one_warning(result, *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if "warning: plugin" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradbench: warning: plugin")
    for fragment in fragments:
        assert fragment in lines[0]


def one_error(result, *fragments: str) -> None:
    """The command stopped with status 2 and one ``gradbench: error: plugin …`` line."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradbench: error: plugin")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test if compare or sweep starts computing."""

    def refuse(*args, **kwargs):
        raise AssertionError("a command ran although its --plugin could not be loaded")

    # The commands import what they call when they run: patched where it is defined.
    monkeypatch.setattr("gradbench.api.run_comparison", refuse)
    monkeypatch.setattr("gradbench.sweeps.orchestration.sweep", refuse)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        ("def broken(:\n", ["SyntaxError"]),
        ("import no_such_module_for_gradbench\n", ["ModuleNotFoundError", "no_such_module"]),
        ("x = 1\n", ["registered no estimator or objective"]),
        (
            "import gradbench\nfrom gradbench.estimators.reparam import Reparam\n"
            "@gradbench.register_estimator\nclass Twin(Reparam):\n    name = 'reinforce'\n",
            ["'reinforce' is taken", "built-in"],
        ),
    ],
    ids=["syntax-error", "import-error", "empty", "duplicate-name"],
)
def test_a_broken_file_plugin_is_one_error_line_and_nothing_runs(
    tmp_path, source, fragments, nothing_runs
):
    spec = write(tmp_path / "plugin.py", source)
    table = tmp_path / "out.csv"
    result = invoke(
        "compare", "gaussian-square", "-e", "reinforce", *QUICK, "--csv", str(table),
        "--plugin", spec,
    )  # fmt: skip
    one_error(result, repr(spec), *fragments)
    assert result.stdout == "" and not table.exists()
    assert registry.estimators.entries()["reinforce"].origin == "built-in"


@pytest.mark.parametrize(
    "command",
    [
        ["compare", "gaussian-square", "-n", "100"],
        ["sweep", "gaussian-square", "-e", "reinforce", "--param", "k=0,1", "-n", "100"],
        ["list"],
        ["check", "reinforce", "-n", "100"],
        ["plot", "missing-result.csv", "-o", "figure.png"],
    ],
    ids=lambda command: command[0],
)
@pytest.mark.parametrize("broken", ["syntax-error", "missing-file", "missing-module"])
def test_every_command_stops_at_a_plugin_it_cannot_load(
    tmp_path, monkeypatch, command, broken, nothing_runs
):
    monkeypatch.chdir(tmp_path)
    spec = {
        "syntax-error": write(tmp_path / "broken.py", "def broken(:\n"),
        "missing-file": str(tmp_path / "absent.py"),
        "missing-module": "no_such_module_for_gradbench",
    }[broken]
    fragment = {
        "syntax-error": "SyntaxError",
        "missing-file": "no such file",
        "missing-module": "ModuleNotFoundError",
    }[broken]
    result = invoke(*command, "--plugin", spec)
    one_error(result, repr(spec), fragment)
    assert result.stdout == "" and not (tmp_path / "figure.png").exists()


def test_a_plugin_is_refused_whole(tmp_path):
    """One good and one duplicate class in one file: neither stays registered."""
    spec = write(
        tmp_path / "half.py",
        "import gradbench\nfrom gradbench.estimators.reparam import Reparam\n"
        "@gradbench.register_estimator\nclass Good(Reparam):\n    name = 'good-one'\n"
        "@gradbench.register_estimator\nclass Bad(Reparam):\n    name = 'fd'\n",
    )
    with pytest.raises(plugins.PluginError, match="'fd' is taken"):
        plugins.load_plugin(spec)
    assert "good-one" not in registry.estimators.names()


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("gradbench.estimators.reparam:Nope", ["AttributeError", "Nope"]),
        ("gradbench.core.settings:positive", ["not a gradbench Estimator or Objective subclass"]),
        ("missing/plugin.py", ["no such file"]),
    ],
)
def test_bad_specs_are_one_error_line(spec, fragments):
    result = invoke("list", "--plugin", spec)
    one_error(result, repr(spec), *fragments)
    assert result.stdout == ""


def test_a_broken_entry_point_is_one_line(tmp_path, monkeypatch):
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[gradbench.estimators]\nghost = no_such_module_for_gradbench:Ghost\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = plugins.snapshot()
    plugins.restore(({group: {} for group in plugins.GROUPS}, plugins._State([], [], False)))
    try:
        result = invoke("list")
    finally:
        plugins.restore(saved)
    assert result.exit_code == 0 and "reinforce" in result.stdout
    one_warning(result, "'ghost'", "broken-plugin", "ModuleNotFoundError")


def test_ctrl_c_keeps_the_finished_rows_and_says_where(tmp_path):
    spec = write(
        tmp_path / "interrupt.py",
        "import gradbench\n@gradbench.register_estimator\nclass Stop(gradbench.Estimator):\n"
        "    name = 'zz-ctrl-c'\n    description = 'a user pressing Ctrl-C'\n"
        "    def estimate(self, objective, params, n, generator):\n"
        "        raise KeyboardInterrupt\n",
    )
    target = tmp_path / "partial.csv"
    result = invoke(
        "compare", "gaussian-square", "-e", "reinforce", "-e", "zz-ctrl-c", "-e", "fd", *QUICK,
        "--csv", str(target), "--plugin", spec,
    )  # fmt: skip
    assert result.exit_code == 130
    assert f"1 finished pair(s) are in the table above and in {target}" in result.stderr
    rows = target.read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("gaussian-square,reinforce,ok")


def test_ctrl_c_before_any_pair_finished_skips_the_figure_and_still_exits_130(tmp_path):
    spec = write(
        tmp_path / "interrupt_first.py",
        "import gradbench\n@gradbench.register_estimator\nclass Stop(gradbench.Estimator):\n"
        "    name = 'zz-ctrl-c-first'\n    description = 'a user pressing Ctrl-C at once'\n"
        "    def estimate(self, objective, params, n, generator):\n"
        "        raise KeyboardInterrupt\n",
    )
    figure, table = tmp_path / "partial.png", tmp_path / "partial.csv"
    result = invoke(
        "compare", "gaussian-square", "-e", "zz-ctrl-c-first", *QUICK,
        "--csv", str(table), "--plot", str(figure), "--plugin", spec,
    )  # fmt: skip
    assert result.exit_code == 130
    assert f"--plot {figure} not written" in result.stderr
    assert not figure.exists() and table.exists()
