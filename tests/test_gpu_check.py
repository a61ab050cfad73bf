"""benchmarks/gpu_check.sh --dry-run: every step of the GPU check runs on the CPU, at tiny
sizes, and writes its files (so the one call on a GPU machine has only the device left to
fail on)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = [
    "install",
    "environment",
    "cuda-tests",
    "anchors",
    "default-suite",
    "model-bayes-logreg",
    "model-vae-gaussian",
    "model-vae-bernoulli",
    "model-policy-mdp",
    "train",
]
TABLES = [
    "anchors.csv",
    "default.csv",
    *(
        f"model-{name}.csv"
        for name in ("bayes-logreg", "vae-gaussian", "vae-bernoulli", "policy-mdp")
    ),
    "train.csv",
    "train-basket.csv",
]


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One dry run for the module's tests: the script's result and its output directory."""
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and timeout")
    out = tmp_path_factory.mktemp("gpu-check")
    environment = dict(os.environ, PYTHON=sys.executable)
    environment.pop("OUT", None)
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", str(out)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    return result, out


def test_the_dry_run_passes_every_step(dry_run):
    result, out = dry_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = [line.split("\t") for line in (out / "files" / "steps.tsv").read_text().splitlines()]
    assert [step[0] for step in steps] == STEPS
    assert all(step[1] == "0" for step in steps), steps


def test_every_step_wrote_its_tables(dry_run):
    _, out = dry_run
    files = out / "files"
    for name in TABLES:
        assert rows_of(files / name), name
    anchors = rows_of(files / "anchors.csv")
    assert {row["estimator"] for row in anchors} == {"reparam", "reinforce"}
    assert all(float(row["engine"]) > 0 and float(row["loop"]) > 0 for row in anchors)
    assert {row["status"] for row in rows_of(files / "default.csv")} <= {"ok", "skipped"}
    junit = (files / "cuda-tests.xml").read_text()
    assert 'failures="0"' in junit and 'errors="0"' in junit


def test_the_summary_holds_the_environment_steps_and_tables(dry_run):
    _, out = dry_run
    summary = (out / "gpu-cpu.md").read_text()
    for part in (
        "torch:",
        "## Steps",
        "| anchors | 0 |",
        "eng/loop",
        "bernoulli-toy",
        "policy-mdp",
    ):
        assert part in summary, part
    assert rows_of(out / "gpu-cpu-anchors.csv") == rows_of(out / "files" / "anchors.csv")
    assert (out / "gpu-cpu-default.csv").is_file()
