"""policy-mdp: dynamic programming against brute-force enumeration, the sampler against the exact
law of trajectories, the score-function estimators through the engine, and the command line.

Exact values come from enumerating every (state, action) sequence of a short horizon with its
probability computed directly from the MDP's tables, never from the objective's own methods.
Each stochastic check is seeded. z-checks use |z| < Z = 4.5 (6.8e-6 per check under the normal
approximation); Bonferroni-corrected checks over P coordinates or over trajectory classes use
level ALPHA = 1e-4. The file's ~40 checks fail by chance with probability below 1e-3 together.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import pandas as pd
import pytest
import torch
from reference import Moments
from torch import Tensor
from typer.testing import CliRunner

from gradbench.cli.app import app
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.finite_difference import SimultaneousPerturbation
from gradbench.estimators.optimal_baseline import OptimalBaseline
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.sample_baselines import BatchMean, LeaveOneOut
from gradbench.objectives.policy import RiverSwimPolicy, TabularMDP

Z = 4.5
ALPHA = 1e-4


def random_logits(seed: int) -> Tensor:
    """A seeded, non-uniform policy ``[6, 2]`` in float64."""
    return torch.randn(6, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def all_trajectories(mdp: TabularMDP, horizon: int) -> Tensor:
    """Every array of (state, action) pairs ``[S^H · A^H, H, 2]``, possible or not."""
    pairs = list(itertools.product(range(mdp.states), range(mdp.actions)))
    rows = list(itertools.product(pairs, repeat=horizon))
    return torch.tensor(rows, dtype=torch.float64)


def trajectory_probabilities(mdp: TabularMDP, logits: Tensor, trajectories: Tensor) -> Tensor:
    """ρ(s_0) Π_t π(a_t | s_t) Π_t P(s_{t+1} | s_t, a_t), straight from the tables: ``[N]``."""
    states, actions = trajectories[..., 0].long(), trajectories[..., 1].long()
    policy = torch.softmax(logits, dim=-1)
    probability = mdp.start[states[:, 0]] * policy[states, actions].prod(-1)
    moves = mdp.transition[states[:, :-1], actions[:, :-1], states[:, 1:]]
    return probability * moves.prod(-1)


def returns(mdp: TabularMDP, trajectories: Tensor, discount: float) -> Tensor:
    """Σ_t γ^t r(s_t, a_t) straight from the reward table: ``[N]``."""
    states, actions = trajectories[..., 0].long(), trajectories[..., 1].long()
    weights = discount ** torch.arange(trajectories.shape[1], dtype=torch.float64)
    return (mdp.reward[states, actions] * weights).sum(-1)


def score(logits: Tensor, trajectories: Tensor) -> Tensor:
    """∇_θ log q_θ(x) ``[N, S·A]`` in closed form: ∂ log π(a | s)/∂θ[s, b] = 1[a = b] − π(b | s),
    so the score is N(s, b) − N(s) π(b | s) with N the visit counts of the trajectory."""
    states, actions = trajectories[..., 0].long(), trajectories[..., 1].long()
    S, A = logits.shape
    visits = torch.zeros(len(trajectories), S, A, dtype=torch.float64)
    for t in range(trajectories.shape[1]):
        visits[torch.arange(len(trajectories)), states[:, t], actions[:, t]] += 1
    policy = torch.softmax(logits, dim=-1)
    return (visits - visits.sum(-1, keepdim=True) * policy).flatten(1)


# --- The exact value: dynamic programming against enumeration ---------------------------------


@pytest.mark.parametrize(("horizon", "discount"), [(1, 1.0), (4, 1.0), (4, 0.9)])
def test_dynamic_programming_matches_enumeration(horizon, discount):
    objective = RiverSwimPolicy(horizon=horizon, discount=discount)
    mdp, logits = objective.mdp, random_logits(horizon)
    trajectories = all_trajectories(mdp, horizon)
    leaf = logits.clone().requires_grad_()
    probability = trajectory_probabilities(mdp, leaf, trajectories)
    assert math.isclose(float(probability.detach().sum()), 1.0, abs_tol=1e-12)
    value = (probability * returns(mdp, trajectories, discount)).sum()
    (gradient,) = torch.autograd.grad(value, leaf)

    params = {"logits": logits}
    torch.testing.assert_close(objective.expected_cost(params), value.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        objective.exact_gradient(params), gradient.flatten(), rtol=1e-10, atol=1e-14
    )
    # log q_θ is log of the same probability, −inf exactly where a move is impossible.
    log_prob = objective.distribution(params).log_prob(trajectories)
    torch.testing.assert_close(log_prob, probability.detach().log(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        objective.cost(trajectories, params), returns(mdp, trajectories, discount)
    )


def test_dynamic_programming_matches_forward_occupancy_at_the_default_horizon():
    """J = Σ_t γ^t Σ_s d_t(s) Σ_a π(a | s) r(s, a) with d_{t+1} = d_t P_π, forward in time."""
    objective = RiverSwimPolicy(discount=0.95)
    mdp, logits = objective.mdp, random_logits(1)
    policy = torch.softmax(logits, dim=-1)
    occupancy, value = mdp.start, torch.zeros((), dtype=torch.float64)
    for t in range(objective.horizon):
        value += 0.95**t * (occupancy[:, None] * policy * mdp.reward).sum()
        occupancy = torch.einsum("s,sa,sap->p", occupancy, policy, mdp.transition)
    torch.testing.assert_close(
        objective.expected_cost({"logits": logits}), value, rtol=1e-12, atol=0
    )


def test_default_point_is_the_uniform_policy_with_a_nonzero_gradient():
    objective = RiverSwimPolicy()
    logits = objective.parameters()["logits"]
    assert logits.shape == (6, 2) and torch.equal(logits, torch.zeros(6, 2, dtype=torch.float64))
    gradient = objective.exact_gradient(objective.parameters()).reshape(6, 2)
    assert (gradient != 0).all()
    # As documented: state 0 leans left, to the small sure reward; every other state leans right.
    assert gradient[0, 1] < 0 and (gradient[1:, 1] > 0).all()
    # Softmax logits of one state sum to a constant direction: each state's two entries cancel.
    torch.testing.assert_close(gradient.sum(-1), torch.zeros(6, dtype=torch.float64))


# --- The sampler: noise and transform against the exact law -----------------------------------


def test_sampled_trajectories_follow_the_exact_law():
    horizon, n = 3, 200_000
    objective = RiverSwimPolicy(horizon=horizon)
    mdp, params = objective.mdp, {"logits": random_logits(3)}
    trajectories = all_trajectories(mdp, horizon)
    probability = trajectory_probabilities(mdp, params["logits"], trajectories)
    x = objective.sample(params, n, torch.Generator().manual_seed(11))
    assert x.shape == (n, horizon, 2) and x.dtype == torch.float64
    # The index of each drawn array in the enumeration's order (mixed radix over (s, a) pairs).
    pair = (x[..., 0] * mdp.actions + x[..., 1]).long()
    radix = (mdp.states * mdp.actions) ** torch.arange(horizon - 1, -1, -1)
    counts = torch.bincount((pair * radix).sum(-1), minlength=len(trajectories)).double()
    possible = probability > 0
    assert counts[~possible].sum() == 0
    p = probability[possible]
    assert float(n * p.min()) > 200  # every count is near normal (skewness < 0.08)
    z = (counts[possible] - n * p) / torch.sqrt(n * p * (1 - p))
    threshold = NormalDist().inv_cdf(1 - ALPHA / (2 * len(p)))  # Bonferroni over the classes
    assert float(z.abs().max()) < threshold


def test_mean_return_matches_the_exact_value_at_the_default_horizon():
    objective = RiverSwimPolicy(bias=0.5)
    params, n = objective.parameters(), 100_000
    x = objective.sample(params, n, torch.Generator().manual_seed(5))
    cost = objective.cost(x, params)
    z = (cost.mean() - objective.expected_cost(params)) / (cost.std() / math.sqrt(n))
    assert abs(float(z)) < Z
    assert torch.isfinite(objective.distribution(params).log_prob(x)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_at_the_ends_of_the_unit_interval_gives_possible_trajectories(dtype):
    """u = 0 and u = 1 sit on the edges of F; neither may pick a zero-probability move."""
    objective = RiverSwimPolicy(bias=1.0)
    params = {k: v.to(dtype) for k, v in objective.parameters().items()}
    generator = torch.Generator().manual_seed(2)
    ends = torch.randint(0, 2, (20_000, objective.horizon, 2), generator=generator).to(dtype)
    noise = torch.where(torch.rand(ends.shape, generator=generator) < 0.5, ends, 0.999)
    x = objective.transform(noise.to(dtype), params)
    assert (x[..., 0] > 1).any()  # the middle of the chain is reached
    log_prob = objective.distribution({"logits": params["logits"].double()}).log_prob(x.double())
    assert torch.isfinite(log_prob).all()


# --- Broadcasting of θ's batch dims against the sample dims -----------------------------------


def test_batched_parameters_broadcast_like_one_parameter_at_a_time():
    objective = RiverSwimPolicy(horizon=6)
    logits = torch.stack([random_logits(seed) for seed in range(3)])  # [3, S, A]
    noise = objective.noise(5, {"logits": logits[0]}, torch.Generator().manual_seed(0))
    # Finite differences: θ [K, 1, S, A] with noise [n, H, 2] gives x [K, n, H, 2].
    x = objective.transform(noise, {"logits": logits[:, None]})
    assert x.shape == (3, 5, 6, 2)
    for k in range(3):
        assert torch.equal(x[k], objective.transform(noise, {"logits": logits[k]}))
    # RLOO: x [K, n, H, 2] with θ [n, S, A] gives log q [K, n].
    log_prob = objective.distribution({"logits": logits}).log_prob(x.transpose(0, 1))
    assert log_prob.shape == (5, 3)
    for k in range(3):
        expected = objective.distribution({"logits": logits[k]}).log_prob(x[k])
        torch.testing.assert_close(log_prob[:, k], expected, rtol=1e-14, atol=0)
    values = objective.expected_cost({"logits": logits})
    assert values.shape == (3,)
    for k in range(3):
        assert values[k] == objective.expected_cost({"logits": logits[k]})


# --- Estimators through the engine ------------------------------------------------------------


def test_reinforce_mean_and_variance_match_enumeration():
    """g = f(x) ∇ log q_θ(x): its exact mean and per-coordinate variance over all trajectories."""
    n, horizon = 200_000, 3
    objective = RiverSwimPolicy(horizon=horizon, bias=0.5)
    logits, mdp = objective.parameters()["logits"], objective.mdp
    trajectories = all_trajectories(mdp, horizon)
    probability = trajectory_probabilities(mdp, logits, trajectories)
    estimates = returns(mdp, trajectories, 1.0)[:, None] * score(logits, trajectories)
    config = RunConfig(n_samples=n, seed=3, dtype=torch.float64, timing_repeats=0)
    summary = run_pair(objective, Reinforce(), config).summary
    for j in range(estimates.shape[1]):
        mean = float(probability @ estimates[:, j])
        central = estimates[:, j] - mean
        exact = Moments(mean, float(probability @ central**2), float(probability @ central**4))
        assert math.isclose(mean, float(summary.reference[j]), rel_tol=1e-9, abs_tol=1e-15)
        if exact.variance == 0:  # a state unreachable in H steps: its score is always 0
            assert summary.mean[j] == 0 and summary.coordinate_variance[j] == 0
            continue
        z_mean = (float(summary.mean[j]) - mean) / math.sqrt(exact.variance / n)
        assert abs(z_mean) < Z, f"coordinate {j}: z = {z_mean:.2f}"
        z_var = (float(summary.coordinate_variance[j]) - exact.variance) / math.sqrt(
            exact.variance_of_sample_variance(n)
        )
        assert abs(z_var) < Z, f"coordinate {j}: variance z = {z_var:.2f}"


CONFIG = RunConfig(n_samples=20_000, seed=0, dtype=torch.float64, timing_repeats=0)


@pytest.mark.parametrize(
    "estimator",
    [Reinforce(), LeaveOneOut(), LeaveOneOut(K=4), OptimalBaseline()],
    ids=["reinforce", "rloo", "rloo-K4", "optimal-baseline"],
)
def test_unbiased_score_function_estimators_are_unbiased(estimator):
    result = run_pair(RiverSwimPolicy(), estimator, CONFIG)
    assert result.status == "ok", result.reason
    assert result.grad_dim == 12 and result.labels[:2] == ["logits[0,0]", "logits[0,1]"]
    # Bonferroni p over the 12 coordinates: below ALPHA with probability at most ALPHA.
    assert result.summary.bias_p > ALPHA


def test_the_bias_test_has_power_here():
    """batch-mean with K = 2 halves the score-function term: a bias of ∇J/2 that it must find."""
    summary = run_pair(RiverSwimPolicy(), BatchMean(), CONFIG).summary
    assert summary.bias_p < ALPHA
    assert ((summary.mean - summary.reference / 2).abs() < Z * summary.bias_se).all()


def test_finite_differences_run_on_common_noise():
    config = RunConfig(n_samples=2000, seed=0, dtype=torch.float64, timing_repeats=0)
    result = run_pair(RiverSwimPolicy(), SimultaneousPerturbation(), config)
    assert result.status == "ok", result.reason
    assert result.summary.n_nonfinite == 0


# --- Command line -----------------------------------------------------------------------------

runner = CliRunner()


def test_compare_from_the_command_line(tmp_path):
    table = tmp_path / "policy.csv"
    estimators = ["-e", "reinforce", "-e", "reparam", "-e", "arm", "-e", "spsa"]
    arguments = ["policy-mdp", *estimators, "-n", "2000", "--repeats", "0", "--csv", str(table)]
    result = runner.invoke(app, ["compare", *arguments])
    assert result.exit_code == 0, result.stderr
    assert "policy-mdp" in result.stdout and "skipped (" in result.stdout
    rows = pd.read_csv(table).set_index("estimator")
    assert rows.loc["reinforce", "status"] == "ok" and rows.loc["reinforce", "grad_dim"] == 12
    assert rows.loc["reparam", "status"] == "skipped" and "rsample" in rows.loc["reparam", "reason"]
    assert rows.loc["arm", "status"] == "skipped" and "Bernoulli" in rows.loc["arm", "reason"]
    assert rows.loc["spsa", "status"] == "ok"


@pytest.mark.parametrize(
    ("assignment", "fragment"),
    [("horizon=0", "must be >= 1"), ("discount=1.5", "must be in (0, 1]"), ("bias=x", "'x'")],
)
def test_a_bad_setting_is_one_line_and_exit_2(assignment, fragment):
    result = runner.invoke(app, ["compare", "policy-mdp", "-n", "100", "--set", assignment])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output


def test_list_shows_the_objective_and_its_settings():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    shown = " ".join(result.stdout.split())  # the listing wraps to the terminal's width
    for text in ("policy-mdp", "horizon", "discount", "bias", "dynamic programming"):
        assert text in shown
