"""``gradbench train``: trajectories, checkpoints and the basket, against closed forms.

Statistical checks: the basket's per-coordinate variances against their closed forms
(:mod:`gradbench.analysis.exact_variance`), a t-test on log V with the standard error and the
degrees of freedom of its own 95% interval (Satterthwaite's ν), Bonferroni-corrected at
ALPHA = 1e-4 over every coordinate, estimator and checkpoint of the test: it fails falsely
with probability about 1e-4 (as far as the jackknife's t approximation holds). Everything else
is exact.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from scipy.stats import t as student_t
from typer.testing import CliRunner

from gradbench.cli.app import app
from gradbench.core.estimator import Estimator
from gradbench.engine.run import RunConfig
from gradbench.engine.training import TrainConfig, train_trajectory
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.gaussian import GaussianSquare
from gradbench.sweeps.executors import DaskCluster
from gradbench.sweeps.training import train

ALPHA = 1e-4
K, MU, SIGMA = 3.0, 1.0, 1.0  # gaussian-square's defaults: J = Σ (μ − k)² + σ²


def closed_form_value(theta) -> float:
    mu, sigma = theta["mu"], theta["sigma"]
    return float(((mu - K) ** 2 + sigma**2).sum())


class Oracle(Estimator):
    """The exact gradient in every row: full-batch gradient descent."""

    name = "oracle"
    description = "the exact gradient (a test's yardstick)"

    def estimate(self, objective, params, n, generator):
        exact = objective.exact_gradient({k: v.double().cpu() for k, v in params.items()})
        return exact.to(next(iter(params.values()))).expand(n, -1).clone()


def test_checkpoints_hold_the_closed_form_and_the_basket_its_exact_variances():
    objective = GaussianSquare(dim=2)
    run = RunConfig(n_samples=20_000, timing_repeats=0)
    basket = [Reparam(), Reinforce()]
    config = TrainConfig(steps=20, batch=16, optimizer="sgd", lr=0.05, eval_every=10, run=run)
    trajectory = train_trajectory(objective, basket[0], basket, config, seed=1)
    assert not trajectory.reason and [c.step for c in trajectory.checkpoints] == [0, 10, 20]
    p_values = []
    for checkpoint in trajectory.checkpoints:
        assert checkpoint.objective_value == pytest.approx(closed_form_value(checkpoint.theta))
        exact_norm = objective.exact_gradient(checkpoint.theta).norm()
        assert checkpoint.grad_norm == pytest.approx(float(exact_norm))
        for result in checkpoint.basket:
            assert result.status == "ok", result.reason
            summary = result.summary
            exact = result.estimator.exact_variance(objective, checkpoint.theta)
            low, high = summary.coordinate_variance_ci
            df = summary.coordinate_variance_df.numpy()
            se_log = (high.log() - low.log()).numpy() / (2 * student_t.ppf(0.975, df))
            z = (summary.coordinate_variance.log() - exact.log()).numpy() / se_log
            p_values.extend(2 * student_t.sf(abs(z), df))
    assert min(1.0, len(p_values) * min(p_values)) >= ALPHA
    # The closed form by hand at the start: pathwise ∂μ = 2(x − k), variance 4σ².
    exact = Reparam().exact_variance(objective, trajectory.checkpoints[0].theta)
    torch.testing.assert_close(exact[:2], torch.full((2,), 4 * SIGMA**2, dtype=exact.dtype))


def test_exact_gradient_descent_follows_the_deterministic_recursion():
    """SGD on u = (μ, log σ) with the exact gradient: μ ← μ − η·2(μ − k), log σ ← log σ − η·2σ²."""
    objective, lr = GaussianSquare(dim=1), 0.1
    run = RunConfig(n_samples=100, timing_repeats=0, dtype=torch.float64)
    config = TrainConfig(steps=12, batch=4, optimizer="sgd", lr=lr, eval_every=4, run=run)
    trajectory = train_trajectory(objective, Oracle(), [], config, seed=0)
    mu, log_sigma = MU, math.log(SIGMA)
    expected = {0: (mu, math.exp(log_sigma))}
    for step in range(1, 13):
        sigma = math.exp(log_sigma)
        mu, log_sigma = mu - lr * 2 * (mu - K), log_sigma - lr * 2 * sigma**2
        expected[step] = (mu, math.exp(log_sigma))
    for checkpoint in trajectory.checkpoints:
        want_mu, want_sigma = expected[checkpoint.step]
        assert float(checkpoint.theta["mu"]) == pytest.approx(want_mu, rel=1e-12)
        assert float(checkpoint.theta["sigma"]) == pytest.approx(want_sigma, rel=1e-12)


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    """The columns that must agree between runs (times differ)."""
    timed = [c for c in table.columns if "time" in c or c in ("work_variance", "timing_batch")]
    return table.drop(columns=timed).reset_index(drop=True)


def test_same_seed_same_trajectories_on_every_executor():
    options = dict(
        objectives=["gaussian-square", "bernoulli-toy"],
        estimators=["reinforce", "ema-baseline"],
        replicates=2,
        steps=6,
        batch=8,
        lr=0.1,
        eval_every=3,
        n_samples=1000,
        timing_repeats=0,
    )
    here, again = train(**options), train(**options)
    pool = train(**options, executor="process", workers=2)
    dask = train(**options, executor=DaskCluster(workers=2, processes=False))
    for other in (again, pool, dask):
        pd.testing.assert_frame_equal(_numbers(here.table()), _numbers(other.table()))
        pd.testing.assert_frame_equal(_numbers(here.basket_table()), _numbers(other.basket_table()))
    seeds = here.table().groupby(["objective", "estimator"])["seed"].nunique()
    assert (seeds == 2).all()


def test_train_command_writes_its_files_and_resumes(tmp_path):
    runner = CliRunner()
    csv, basket = tmp_path / "train.csv", tmp_path / "basket.csv"
    arguments = [
        "train", "gaussian-square", "-e", "reparam", "-e", "reinforce", "--steps", "4",
        "--eval-every", "2", "-n", "500", "--repeats", "0", "--csv", str(csv),
        "--basket-csv", str(basket), "--json", str(tmp_path / "train.json"),
    ]  # fmt: skip
    first = runner.invoke(app, arguments)
    assert first.exit_code == 0, first.stdout + first.stderr
    table = pd.read_csv(csv)
    assert set(table["step"]) == {0, 2, 4} and (table["direction"] == "minimise").all()
    assert {"param_mu[0]", "param_sigma[0]"} <= set(table.columns)
    assert set(pd.read_csv(basket)["basket_estimator"]) == {"reparam", "reinforce"}
    resumed = runner.invoke(app, [*arguments, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    pd.testing.assert_frame_equal(_numbers(pd.read_csv(csv)), _numbers(table))


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [("--optimizer", "rmsprop", "rmsprop"), ("--lr", "0", "--lr 0"), ("-e", "nope", "nope")],
)
def test_train_refuses_bad_input_in_one_line(option, value, named):
    result = CliRunner().invoke(app, ["train", "gaussian-square", option, value, "--steps", "2"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]


def test_plot_draws_a_saved_training_result(tmp_path):
    pytest.importorskip("matplotlib")
    runner = CliRunner()
    csv, basket, json = tmp_path / "t.csv", tmp_path / "b.csv", tmp_path / "t.json"
    trained = runner.invoke(
        app,
        ["train", "gaussian-square", "-e", "reparam", "--steps", "4", "--eval-every", "2",
         "-n", "500", "--repeats", "0", "--csv", str(csv), "--basket-csv", str(basket),
         "--json", str(json)],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    for arguments in ([str(csv), "--detail", str(basket)], [str(json)]):
        out = tmp_path / "figure.png"
        drawn = runner.invoke(app, ["plot", *arguments, "-o", str(out), "--overwrite"])
        assert drawn.exit_code == 0, drawn.stderr
        assert out.stat().st_size > 0


class _Bowl(GaussianSquare):
    """J = E[Σ (x − k)²] + h, h = −3 Σ μ², maximised. In μ, J = (μ − k)² − 3μ² + σ² peaks
    at μ = −k/2 (σ² only grows J, and only μ is checked)."""

    name = "test-bowl"
    maximize = True

    def analytic_term(self, params):
        return -3 * (params["mu"] ** 2).sum(-1)

    def expected_cost(self, params):
        return super().expected_cost(params) + self.analytic_term(params)


class _OracleOfTheCost(Oracle):
    """The exact gradient of E[f] alone (the engine adds ∇h), as estimators give it."""

    name = "oracle-cost"

    def estimate(self, objective, params, n, generator):
        full = super().estimate(objective, params, n, generator)
        exact = {k: v.double().cpu() for k, v in params.items()}
        return full - objective.analytic_gradient(exact).to(full)


def test_adam_ascends_a_maximised_objective_with_its_analytic_term():
    """∂J/∂μ = 2(μ − k) − 6μ = −4μ − 2k: the maximiser of μ is −k/2 = −1.5."""
    run = RunConfig(n_samples=100, timing_repeats=0, dtype=torch.float64)
    config = TrainConfig(steps=400, batch=4, optimizer="adam", lr=0.05, eval_every=400, run=run)
    trajectory = train_trajectory(_Bowl(dim=1), _OracleOfTheCost(), [], config, seed=0)
    assert not trajectory.reason
    assert float(trajectory.checkpoints[-1].theta["mu"]) == pytest.approx(-K / 2, abs=0.05)


def test_a_step_that_leaves_the_support_ends_the_trajectory_there():
    run = RunConfig(n_samples=100, timing_repeats=0)
    config = TrainConfig(steps=50, batch=4, lr=1e6, eval_every=50, run=run)
    trajectory = train_trajectory(GaussianSquare(dim=1), Reparam(), [], config, seed=0)
    assert "at step" in trajectory.reason
    assert [c.step for c in trajectory.checkpoints] == [0]


class _ValuelessSquare(GaussianSquare):
    """J(θ) cannot be evaluated: the first checkpoint raises."""

    name = "valueless-square"

    def expected_cost(self, params):
        raise RuntimeError("no value here")


def test_a_trajectory_that_fails_at_its_first_checkpoint_keeps_a_failed_row():
    from gradbench.records.training import trajectory_rows

    run = RunConfig(n_samples=100, timing_repeats=0)
    config = TrainConfig(steps=5, batch=4, eval_every=5, run=run)
    trajectory = train_trajectory(_ValuelessSquare(), Reparam(), [], config, seed=0)
    assert trajectory.checkpoints == [] and "no value here" in trajectory.reason
    rows, basket, _ = trajectory_rows(trajectory, 0, config, {})
    assert [(row["status"], row["reason"]) for row in rows] == [("failed", trajectory.reason)]
    assert basket == []
