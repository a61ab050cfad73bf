"""Sweeps: axis specs, the task grid, executors that agree to the last bit, the journal, resume.

Nothing here is statistical: every comparison is between runs with the same seeds, which must
agree exactly, or between the aggregate and the rows it is computed from. No false failures.
"""

from __future__ import annotations

import io
import itertools
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gradbench.cli.app import app
from gradbench.engine.run import derive_seed
from gradbench.extend import plugins
from gradbench.records.comparison import COLUMNS, DETAIL_COLUMNS
from gradbench.sweeps.device_lock import DeviceLock
from gradbench.sweeps.executors import DaskCluster, ProcessPool, _WorkerWatch
from gradbench.sweeps.grid import Axis, parse_list, parse_scan
from gradbench.sweeps.journal import Journal
from gradbench.sweeps.orchestration import sweep
from gradbench.sweeps.result import METRICS

fcntl = pytest.importorskip("fcntl")

runner = CliRunner()
PLUGINS = Path(__file__).parent / "plugins"
TRIPWIRE = str(PLUGINS / "sweep_tripwire.py")
BIASED = str(PLUGINS / "biased_estimator.py")
QUICK = {"n_samples": 2000, "timing_repeats": 1}
#: Columns that are numbers of the estimates: equal seeds must give them exactly.
NUMBERS = [
    "seed",
    "run_seed",
    "variance",
    "variance_ci_low",
    "variance_ci_high",
    "bias_norm",
    "bias_z_max",
    "bias_p",
    "mse",
    "snr",
    "cosine",
    "sign_error",
]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradbench: error:")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_lists_keep_their_values_and_scans_span_both_bounds():
    assert parse_list("k=0,0.5,2").values == (0, 0.5, 2.0)
    assert parse_list("fd.step=1e-3").name == "fd.step"
    lin = parse_scan("k=-1:1:5").values
    assert lin == pytest.approx((-1.0, -0.5, 0.0, 0.5, 1.0), abs=1e-15)
    log = parse_scan("sigma=0.1:10:5:log").values
    assert log[0] == pytest.approx(0.1) and log[-1] == pytest.approx(10.0)
    ratios = [b / a for a, b in itertools.pairwise(log)]
    assert ratios == pytest.approx([10 ** (2 / 4)] * 4)
    assert Axis.scan("sigma", 0.1, 10, 5, "log") == Axis("sigma", log)
    assert parse_scan("k=2:2:1").values == (2.0,)
    # powers of two come out exact, so an integer setting accepts them (not 7.999999999999999)
    assert parse_scan("particles=1:256:9:log").values == tuple(2.0**i for i in range(9))


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--param", "k=0,a"], ["'a' is not a number", "NAME=V1,V2,..."]),
        (["--param", "k"], ["'k'", "NAME=V1,V2,..."]),
        (["--param", "k=1:2:3"], ["--param-scan NAME=START:STOP:COUNT[:lin|log]"]),
        (["--param", "k=1,1"], ["value 1 is given twice"]),
        (["--param-scan", "sigma=0:10:5:log"], ["log scan needs START > 0", "[:lin|log]"]),
        (["--param-scan", "sigma=1:10:5:cubic"], ["'cubic'", "lin, log"]),
        (["--param-scan", "sigma=1:10:2.5"], ["COUNT '2.5' is not an integer"]),
        (["--param-scan", "sigma=1:10"], ["'sigma=1:10'", "NAME=START:STOP:COUNT[:lin|log]"]),
        (["--param-scan", "sigma=1:10:0"], ["COUNT 0 must be >= 1"]),
        (["--param", "k=0,1", "--param-scan", "k=0:1:3"], ["'k' is given twice"]),
        (["--param", "k=0,1", "--set", "k=2"], ["'k' is both swept and set"]),
        (["--param", "q=0,1"], ["'q'", "valid settings", "sigma"]),
        (["--param", "sigma=1,-1"], ["sigma=-1", "must be > 0"]),
        (["--param", "nope.step=1,2"], ["'nope'", "gaussian-square", "reinforce"]),
        (["--workers", "2"], ["--workers 2", "--executor process"]),
        (["--scheduler", "tcp://localhost:1"], ["needs --executor dask"]),
        (["--executor", "ray"], ["'ray'", "inprocess, process, dask"]),
        (["--seeds", "0"], ["--seeds", "0 is not a positive integer"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragments, tmp_path):
    output = tmp_path / "sweep.csv"
    result = invoke(
        "sweep", "gaussian-square", "-e", "reinforce", "-n", "100", *args, "--csv", str(output)
    )
    assert_usage_error(result, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_resume_needs_the_csv_of_its_journal():
    assert_usage_error(invoke("sweep", "gaussian-square", "--resume"), "--resume needs --csv")


def test_missing_dask_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    result = invoke("sweep", "gaussian-square", "-e", "reinforce", "--executor", "dask")
    assert_usage_error(result, "pip install 'gradbench[dask]'")


def test_one_row_per_task_with_its_parameters_and_seed():
    result = sweep(
        ["gaussian-square", "bernoulli-toy"],
        ["reinforce", "reparam"],
        [parse_list("k=0,1"), parse_scan("sigma=0.5:2:3:log")],
        replicates=2,
        **QUICK,
    )
    table = result.table()
    assert set(COLUMNS) < set(table.columns) and "setting_sigma" in table.columns
    gaussian = table[table.objective == "gaussian-square"]
    bernoulli = table[table.objective == "bernoulli-toy"]
    # 2 k × 3 sigma × 2 replicates × 2 estimators; bernoulli-toy has neither setting, so it
    # runs once per replicate and estimator, with empty parameters.
    assert len(gaussian) == 24 and len(bernoulli) == 4 and len(table) == len(result.tasks)
    assert bernoulli[["param_k", "param_sigma"]].isna().all().all()
    assert sorted(set(gaussian.param_k)) == [0, 1]
    assert gaussian.param_sigma.nunique() == 3
    assert (gaussian.setting_sigma == gaussian.param_sigma).all()
    assert sorted(set(table.replicate)) == [0, 1]
    assert table.task.is_unique
    assert table.task.iloc[0] == "gaussian-square|reinforce|k=0,sigma=0.5|replicate=0"
    assert list(table.seed) == [derive_seed(0, key) for key in table.task]
    assert not table.timing_contention.any()

    detail = result.detail_table()
    assert list(detail.columns) == [*DETAIL_COLUMNS, "task", "replicate", "param_k", "param_sigma"]
    assert len(detail) == table.grad_dim[table.status == "ok"].sum()  # a row per coordinate


def test_aggregate_is_the_mean_and_standard_error_over_replicates():
    result = sweep(["gaussian-square"], ["reinforce"], {"k": [0, 1]}, replicates=3, **QUICK)
    table, aggregate = result.table(), result.aggregate()
    assert len(aggregate) == 2 and (aggregate.replicates == 3).all()
    for row in aggregate.to_dict("records"):
        group = table[table.param_k == row["param_k"]]
        for metric in METRICS:
            values = group[metric].astype(float)
            assert row[f"{metric}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            se = values.std(ddof=1) / math.sqrt(3)
            assert row[f"{metric}_se"] == pytest.approx(se, rel=1e-9, abs=1e-300)
        assert row["bias_p"] == pytest.approx(min(1.0, 3 * group["bias_p"].min()), rel=1e-12)
    single = sweep(["gaussian-square"], ["reinforce"], {"k": [0]}, **QUICK).aggregate()
    assert math.isnan(single.variance_se[0]) and not math.isnan(single.variance_mean[0])


def test_process_pool_and_dask_give_the_numbers_of_the_in_process_run():
    """Workers receive plugin spec strings and task keys; seeds come from the keys alone."""
    arguments = (["gaussian-square", "bernoulli-toy"], ["reinforce", "reparam", "biased-reparam"])
    options = dict(axes={"sigma": [0.5, 2.0]}, replicates=2, plugins=[BIASED], **QUICK)
    here = sweep(*arguments, **options)
    pool = sweep(*arguments, executor="process", workers=2, **options)
    dask = sweep(*arguments, executor=DaskCluster(workers=2, processes=False), **options)
    expected = here.table()
    # 2 sigma × 2 replicates × 3 estimators on gaussian-square, and reinforce's 2 replicates on
    # bernoulli-toy (which the pathwise estimators skip).
    assert (expected.status == "ok").sum() == 14
    for other in (pool, dask):
        table = other.table()
        pd.testing.assert_frame_equal(table[NUMBERS], expected[NUMBERS])
        assert list(table.task) == list(expected.task)
        pd.testing.assert_frame_equal(other.detail_table(), here.detail_table())
    assert pool.table().torch_threads.eq(max(1, (os.cpu_count() or 1) // 2)).all()
    # The device lock keeps timings apart, so none is marked.
    assert not pool.table().timing_contention.any()


class ElsewherePool(ProcessPool):
    """A process pool whose workers start in ``directory``, as workers on other machines do."""

    def __init__(self, directory: Path) -> None:
        super().__init__(workers=1)
        self.directory = directory

    def __enter__(self) -> ElsewherePool:
        self._pool = ProcessPoolExecutor(
            self.concurrency,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=os.chdir,
            initargs=(str(self.directory),),
        )
        return self


def test_a_relative_plugin_path_reaches_workers_started_elsewhere(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "mine").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(BIASED, project / "mine" / "biased.py")
    monkeypatch.chdir(project)
    relative = os.path.join("mine", "biased.py")
    absolute = str(project / "mine" / "biased.py")
    result = sweep(
        ["gaussian-square"], ["biased-reparam"], executor=ElsewherePool(elsewhere),
        plugins=[relative], **QUICK,
    )  # fmt: skip
    assert result.table().status.tolist() == ["ok"]
    assert result.options.plugins == (absolute,)
    assert [plugin["spec"] for plugin in plugins.loaded()] == [absolute]


class Stderr(io.StringIO):
    """stderr that sets ``seen`` once a line holding ``text`` has been written."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.seen = text, threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.text in self.getvalue():
            self.seen.set()
        return written


def test_a_cluster_without_workers_says_so_once_and_waits_for_one(monkeypatch):
    distributed = pytest.importorskip("distributed")
    stderr = Stderr("has had no workers")
    monkeypatch.setattr(sys, "stderr", stderr)
    with distributed.LocalCluster(
        n_workers=0, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address

        def join() -> None:
            """Add a worker once the warning is out (and a few more looks found none)."""
            if stderr.seen.wait(timeout=15):
                time.sleep(1.5)
            cluster.scale(1)

        helper = threading.Thread(target=join, daemon=True)
        helper.start()
        with DaskCluster(scheduler=address, no_workers_warning_s=1) as executor:
            results = sorted(executor.run(abs, [-1, -2, -3]))
        helper.join()
    assert results == [1, 2, 3]
    warnings = [line for line in stderr.getvalue().splitlines() if "no workers" in line]
    assert warnings == [
        f"gradbench: warning: the Dask cluster at {address} has had no workers for 1 s; tasks"
        f" wait until a worker joins (start one with: dask worker {address})"
    ]


def test_the_worker_watch_warns_after_a_stretch_without_workers(capsys):
    now = [0.0]
    watch = _WorkerWatch(30, clock=lambda: now[0])
    for moment, workers in [(0, 0), (20, 0), (25, 2), (40, 0), (69, 0)]:
        now[0] = moment
        watch.look(workers, "tcp://host:8786")
    assert capsys.readouterr().err == ""  # never 30 s in a row without workers
    now[0] = 70
    watch.look(0, "tcp://host:8786")
    now[0] = 200
    watch.look(0, "tcp://host:8786")
    assert capsys.readouterr().err == (
        "gradbench: warning: the Dask cluster at tcp://host:8786 has had no workers for 30 s;"
        " tasks wait until a worker joins (start one with: dask worker tcp://host:8786)\n"
    )


def test_timings_taken_side_by_side_are_marked():
    result = sweep(
        ["gaussian-square", "bernoulli-toy"],
        ["reinforce", "reparam"],
        executor=DaskCluster(workers=2, processes=False),
        exclusive_timing=False,
        **QUICK,
    )
    table = result.table()
    timed = table.time_per_sample_s.notna()
    assert timed.sum() == 3 and (table.timing_contention == timed).all()
    assert "timing_contention" in result.timing_note()


def test_device_lock_shares_work_and_excludes_timing(tmp_path):
    path = tmp_path / "cpu.lock"

    def free(mode: int) -> bool:
        probe = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(probe, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(probe)
        return True

    with DeviceLock(path), DeviceLock(path):
        # Two tasks work side by side, and a third may join; none may time meanwhile.
        assert free(fcntl.LOCK_SH) and not free(fcntl.LOCK_EX)
    with DeviceLock(path) as timing:
        with timing.exclusive():
            assert not free(fcntl.LOCK_SH)  # no other task works while one is timed
        assert free(fcntl.LOCK_SH) and not free(fcntl.LOCK_EX)
    assert free(fcntl.LOCK_EX)


def test_journal_skips_the_truncated_line_a_crash_leaves(tmp_path):
    journal = Journal.start(tmp_path / "j", {"seed": 0}, resume=False, overwrite=False)
    journal.append({"task": "a", "rows": [{"variance": math.inf, "bias_p": math.nan}]})
    journal.append({"task": "b", "rows": []})
    (session,) = (tmp_path / "j").glob("*.jsonl")
    with session.open("a") as stream:
        stream.write('{"task": "c", "rows": [')
    finished = Journal.start(tmp_path / "j", {"seed": 0}, resume=True, overwrite=False).finished()
    assert list(finished) == ["a", "b"]
    assert finished["a"]["rows"][0]["variance"] == math.inf
    assert math.isnan(finished["a"]["rows"][0]["bias_p"])


def tripwire_sweep(csv: Path, *extra: str) -> list[str]:
    return [
        "sweep", "gaussian-square", "-e", "tripwire", "--param", "k=0,1,2,3", "-n", "2000",
        "--repeats", "0", "--csv", str(csv), "--plugin", TRIPWIRE, *extra,
    ]  # fmt: skip


def computed(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_a_killed_sweep_resumes_without_recomputing_finished_tasks(tmp_path, monkeypatch):
    log, csv = tmp_path / "computed.log", tmp_path / "sweep.csv"
    monkeypatch.setenv("GRADBENCH_TRIPWIRE_LOG", str(log))
    crash = {"GRADBENCH_TRIPWIRE": "kill", "GRADBENCH_TRIPWIRE_AT": "2"}
    killed = subprocess.run(
        [sys.executable, "-m", "gradbench", *tripwire_sweep(csv)],
        env={**os.environ, **crash},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr  # SIGKILL: nothing could clean up
    assert computed(log) == ["0", "1", "2"] and not csv.exists()
    (session,) = (tmp_path / "sweep.csv.parts").glob("*.jsonl")
    journal_before = session.read_bytes()
    assert journal_before.count(b"\n") == 2  # k = 0 and 1 finished

    refused = invoke(*tripwire_sweep(csv))
    assert_usage_error(refused, "holds an earlier sweep", "--resume", "--overwrite")

    log.unlink()
    resumed = invoke(*tripwire_sweep(csv, "--resume"))
    assert resumed.exit_code == 0, resumed.stderr
    assert computed(log) == ["2", "3"]  # only the unfinished tasks ran
    assert session.read_bytes() == journal_before

    whole = invoke(*tripwire_sweep(tmp_path / "whole.csv"))
    assert whole.exit_code == 0, whole.stderr
    pd.testing.assert_frame_equal(
        pd.read_csv(csv)[NUMBERS],
        pd.read_csv(tmp_path / "whole.csv")[NUMBERS],
    )
    assert list(pd.read_csv(csv).param_k) == [0, 1, 2, 3]

    log.unlink()
    again = invoke(*tripwire_sweep(csv, "--resume"))
    assert again.exit_code == 0 and computed(log) == []  # nothing left to run
    changed = invoke(*tripwire_sweep(csv, "--resume"), "-n", "4000")
    assert_usage_error(changed, "n_samples=2000, not 4000", "--overwrite")


def test_a_dead_worker_stops_the_sweep_in_one_line_and_keeps_what_finished(tmp_path, monkeypatch):
    log, csv = tmp_path / "computed.log", tmp_path / "sweep.csv"
    monkeypatch.setenv("GRADBENCH_TRIPWIRE_LOG", str(log))
    monkeypatch.setenv("GRADBENCH_TRIPWIRE", "kill")
    monkeypatch.setenv("GRADBENCH_TRIPWIRE_AT", "2")
    died = invoke(*tripwire_sweep(csv, "--executor", "process", "--workers", "1"))
    assert died.exit_code == 1
    (line,) = died.stderr.strip().splitlines()
    assert "a worker process died" in line and "2 of 4 tasks finished" in line
    assert line.endswith("finish with --resume)") and "Traceback" not in died.output

    monkeypatch.delenv("GRADBENCH_TRIPWIRE")
    log.unlink()
    resumed = invoke(*tripwire_sweep(csv, "--resume"))
    assert resumed.exit_code == 0, resumed.stderr
    assert computed(log) == ["2", "3"]


def test_ctrl_c_keeps_finished_tasks_and_says_how_to_resume(tmp_path, monkeypatch):
    log, csv = tmp_path / "computed.log", tmp_path / "sweep.csv"
    monkeypatch.setenv("GRADBENCH_TRIPWIRE_LOG", str(log))
    monkeypatch.setenv("GRADBENCH_TRIPWIRE", "interrupt")
    monkeypatch.setenv("GRADBENCH_TRIPWIRE_AT", "1")
    interrupted = invoke(*tripwire_sweep(csv))
    assert interrupted.exit_code == 130
    parts = tmp_path / "sweep.csv.parts"
    assert f"1 of 4 tasks finished; they are kept in {parts}: finish with --resume" in (
        interrupted.stderr
    )
    assert list(pd.read_csv(csv).param_k) == [0]

    monkeypatch.delenv("GRADBENCH_TRIPWIRE")
    log.unlink()
    resumed = invoke(*tripwire_sweep(csv, "--resume"))
    assert resumed.exit_code == 0, resumed.stderr
    assert computed(log) == ["1", "2", "3"]
    assert list(pd.read_csv(csv).param_k) == [0, 1, 2, 3]
    assert f"wrote {csv}" in resumed.stderr and "k" in resumed.stdout


def test_outputs_are_refused_or_replaced_as_compare_does(tmp_path):
    csv = tmp_path / "sweep.csv"
    args = ["sweep", "gaussian-square", "-e", "reinforce", "--param", "k=0,1", "-n", "500"]
    first = invoke(*args, "--csv", str(csv))
    assert first.exit_code == 0, first.stderr
    assert (tmp_path / "sweep-aggregate.csv").exists()
    assert_usage_error(invoke(*args, "--csv", str(csv)), str(csv), "exists", "--overwrite")
    replaced = invoke(*args, "--csv", str(csv), "--overwrite")
    assert replaced.exit_code == 0, replaced.stderr
    assert len(list((tmp_path / "sweep.csv.parts").glob("*.jsonl"))) == 1

    foreign = tmp_path / "other.csv"
    foreign.write_text("someone else's table\n")
    refused = invoke(*args, "--csv", str(foreign), "--resume")
    assert_usage_error(refused, "no sweep to resume", "--overwrite")
    assert foreign.read_text() == "someone else's table\n"


def test_the_summary_shows_each_grid_point_with_its_spread(tmp_path):
    result = invoke(
        "sweep", "gaussian-square", "-e", "reinforce", "-e", "reparam", "--param", "k=0,1",
        "--param-scan", "sigma=1:2:2", "--seeds", "2", "-n", "500", "--repeats", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = [
        line for line in result.stdout.splitlines() if line.startswith(("reinforce", "reparam"))
    ]
    assert len(rows) == 2 * 2 * 2  # one per (k, sigma, estimator)
    assert all("±" in row for row in rows) and "timings: not timed" in " ".join(
        result.stdout.split()
    )
    assert "wrote" not in result.stdout


def test_resume_runs_failed_tasks_again(tmp_path, monkeypatch):
    log, csv = tmp_path / "computed.log", tmp_path / "sweep.csv"
    monkeypatch.setenv("GRADBENCH_TRIPWIRE_LOG", str(log))
    monkeypatch.setenv("GRADBENCH_TRIPWIRE", "fail")
    monkeypatch.setenv("GRADBENCH_TRIPWIRE_AT", "1")
    first = invoke(*tripwire_sweep(csv))
    assert first.exit_code == 1, first.stderr  # a failed task: status 1, after writing
    assert list(pd.read_csv(csv).status) == ["ok", "failed", "ok", "ok"]
    log.unlink()
    monkeypatch.delenv("GRADBENCH_TRIPWIRE")
    resumed = invoke(*tripwire_sweep(csv, "--resume"))
    assert resumed.exit_code == 0, resumed.stderr
    assert computed(log) == ["1"]  # only the failed task ran again
    assert list(pd.read_csv(csv).status) == ["ok"] * 4
    log.unlink()
    again = invoke(*tripwire_sweep(csv, "--resume"))
    assert again.exit_code == 0 and computed(log) == []  # its new record replaced the old
