"""Estimated references, the model adapter and the objective conformance suite.

Each statistical check is Bonferroni-corrected at ALPHA = 1e-4 over the coordinates it tests:
a z against an estimated reference uses Student's t with the reference's 63 degrees of freedom
(the smaller side's, for two estimates), the engine's bias test and the objective suite their
own (see objective_conformance.py). So each fails falsely with probability about 1e-4; the
file has about 30 such checks (the suite on 12 built-in objectives and 4 model families, at most
four tests each, and five more), so together about 3e-3, at most 7e-3. The deliberately biased
estimator's bias is tens of standard errors, so it is flagged at the record's own level
(p < 0.01) with certainty.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import t as student_t
from torch.distributions import Bernoulli, Categorical, Gamma, Normal
from typer.testing import CliRunner

import gradbench
from gradbench.api import ReferenceOptions, run_comparison
from gradbench.cli.app import app
from gradbench.core.errors import InputError
from gradbench.engine import reference as estimated
from gradbench.engine.reference import ReferencePlan, estimate_reference
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import BatchMean, LeaveOneOut
from gradbench.extend import registry
from gradbench.extend.objective_conformance import check_objective
from gradbench.objectives.gaussian import GaussianSquare
from gradbench.objectives.vae import GaussianVAE
from gradbench.records.ranking import bias_is_significant

ALPHA = 1e-4

STATE = torch.tensor([1.0, -0.5, 0.25])
REWARD = torch.tensor([1.0, 0.2, -0.4, 0.7])


def softmax_policy() -> gradbench.Objective:
    """A 4-action softmax policy whose exact gradient only this file knows."""
    torch.manual_seed(0)
    policy = torch.nn.Linear(3, 4)
    cls = gradbench.ModelObjective.define(
        "test-softmax-policy",
        "softmax policy over 4 actions",
        module=policy,
        distribution=lambda net: Categorical(logits=net(STATE)),
        cost=lambda action: REWARD.to(action.device, torch.float64)[action],
    )
    return cls()


def exact_policy_gradient(objective) -> torch.Tensor:
    """∇ Σ_a softmax(W s + b)_a r_a by enumeration of the 4 actions, flattened like θ."""
    params = {k: v.clone().requires_grad_() for k, v in objective.parameters().items()}
    logits = params["weight"] @ STATE.double() + params["bias"]
    value = (torch.softmax(logits, 0) * REWARD.double()).sum()
    grads = torch.autograd.grad(value, list(params.values()))
    return torch.cat([g.reshape(-1) for g in grads])


def bonferroni_p(z: torch.Tensor, df: float = 63) -> float:
    """Bonferroni over the coordinates of two-sided Student-t p-values with ``df``."""
    return min(1.0, z.numel() * 2 * float(student_t.sf(float(z.abs().max()), df)))


def test_estimated_reference_of_a_model_matches_its_enumerated_gradient():
    objective = softmax_policy()
    comparison = run_comparison(
        [objective],
        [Reinforce(), LeaveOneOut(), LeaveOneOut(K=4), BatchMean()],
        n_samples=20_000,
        timing_repeats=0,
        dtype="float64",
        reference=ReferenceOptions(cache=False),
    )
    rows = {(row["estimator"], row.get("option_K")): row for row in comparison.rows}
    exact = exact_policy_gradient(objective)
    result = run_pair(objective, Reinforce(), RunConfig(n_samples=2000, timing_repeats=0))
    reference, error = result.summary.reference, result.summary.reference_se
    assert result.reference_estimator == "rloo"  # no rsample: the leave-one-out score function
    varies = error > 0
    assert bonferroni_p(((reference - exact) / error)[varies]) >= ALPHA
    # rloo (K = 2) made the reference: not informative. The others are tested against it.
    made = rows[("rloo", 2)]
    assert made["made_reference"] and math.isnan(made["bias_p"])
    reinforce = rows[("reinforce", None)]
    assert reinforce["bias_p"] >= ALPHA and not reinforce["made_reference"]
    assert rows[("rloo", 4)]["bias_p"] >= ALPHA and not rows[("rloo", 4)]["made_reference"]
    assert bias_is_significant(rows[("batch-mean", 2)])


def test_vae_gaussian_reference_agrees_with_the_direct_pathwise_mean():
    """The shared mechanism against the computation vae-gaussian had of its own: 64 groups of
    pathwise gradients of the mean ELBO, each one backward pass, on another seed."""
    objective = GaussianVAE(batch=4)
    params = objective.parameters()
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    generator = torch.Generator().manual_seed(12345)
    groups = []
    for _ in range(64):
        noise = objective.noise(256, leaves, generator)
        value = objective.cost(objective.transform(noise, leaves), leaves).mean()
        grads = torch.autograd.grad(value, list(leaves.values()))
        groups.append(torch.cat([g.reshape(-1) for g in grads]))
    means = torch.stack(groups)
    direct = means.mean(0) + objective.analytic_gradient(params)
    direct_se = means.std(0) / 8
    config = RunConfig(n_samples=2000, timing_repeats=0, reference=ReferencePlan(samples=16384))
    summary = run_pair(objective, LeaveOneOut(), config).summary
    varies = direct_se > 0
    z = (summary.reference - direct)[varies] / (summary.reference_se**2 + direct_se**2)[
        varies
    ].sqrt()
    assert bonferroni_p(z) >= ALPHA


class _NoClosedForm(GaussianSquare):
    """gaussian-square without its closed form: the engine estimates its reference."""

    name = "test-gaussian-square-estimated"
    expected_cost = gradbench.Objective.expected_cost


class _Counting(Reparam):
    calls = 0

    def estimate(self, objective, params, n, generator):
        type(self).calls += 1
        return super().estimate(objective, params, n, generator)


def _reference(objective, plan, n=4000, run_variance=None):
    params = objective.parameters()
    labels = [str(i) for i in range(sum(v.numel() for v in params.values()))]
    estimator = plan.estimator or Reparam()
    return estimate_reference(
        objective, estimator, params, plan, torch.device("cpu"), 256, run_variance, n, labels
    )


def test_reference_size_follows_the_run_and_a_longer_one_extends_a_shorter(tmp_path):
    objective = _NoClosedForm(dim=3)
    small = _reference(objective, ReferencePlan(cache_dir=tmp_path), n=1000)
    large = _reference(objective, ReferencePlan(cache_dir=tmp_path), n=64_000)
    # Sized as n·max(v/w)/ρ² with w = v (the same estimator): 16n up to sampling noise.
    assert small.samples * 1.5 >= 16 * 1000 and large.samples >= 16 * 64_000 / 1.5
    assert large.samples >= 32 * small.samples
    # The small one again, after the large one grew the stream: the same numbers.
    again = _reference(objective, ReferencePlan(cache_dir=tmp_path), n=1000)
    torch.testing.assert_close(again.reference.gradient, small.reference.gradient)
    # The exact gradient 2μ per coordinate lies within the large reference's error.
    exact = GaussianSquare(dim=3).exact_gradient(objective.parameters())
    z = (large.reference.gradient - exact) / large.reference.standard_error
    assert bonferroni_p(z, large.reference.degrees_of_freedom) >= ALPHA


def test_reference_cap_warns_and_a_fixed_count_is_rounded_up(tmp_path):
    objective = _NoClosedForm(dim=2)
    quiet = torch.full((4,), 1e-6, dtype=torch.float64)  # a run far less noisy
    capped = _reference(objective, ReferencePlan(max_samples=2**15), run_variance=quiet)
    assert capped.samples <= 2**15 and "capped at" in capped.warning
    fixed = _reference(objective, ReferencePlan(samples=20_000))
    assert fixed.samples >= 20_000 and fixed.samples % (64 * 256) == 0 and not fixed.warning


def test_disk_cache_is_reused_across_processes_and_bypassed_without_it(tmp_path):
    objective = _NoClosedForm(dim=2)
    plan = ReferencePlan(estimator=_Counting(), samples=16384, cache_dir=tmp_path)
    first = _reference(objective, plan)
    assert list((tmp_path / "references").glob("*.pt"))
    estimated._streams.clear()  # a new process: only the disk remains
    _Counting.calls = 0
    second = _reference(objective, plan)
    assert _Counting.calls == 0
    torch.testing.assert_close(second.reference.gradient, first.reference.gradient)
    estimated._streams.clear()
    uncached = _reference(objective, ReferencePlan(estimator=_Counting(), samples=16384))
    assert _Counting.calls > 0
    torch.testing.assert_close(uncached.reference.gradient, first.reference.gradient)


@pytest.mark.parametrize(
    "family",
    [
        lambda p: Normal(p["loc"], p["scale"].exp()),
        lambda p: Bernoulli(logits=p["loc"]),
        lambda p: Gamma(p["scale"].exp() + 1.0, 1.0),
        lambda p: Categorical(logits=torch.stack([p["loc"], -p["loc"]], -1)),
    ],
    ids=["normal", "bernoulli", "gamma", "categorical"],
)
def test_model_objectives_of_each_family_pass_the_objective_suite(family, request):
    cls = gradbench.ModelObjective.define(
        f"test-model-{request.node.callspec.id}",
        "a small model",
        parameters={"loc": torch.tensor([0.3, -0.2]), "scale": torch.tensor([0.1, -0.3])},
        distribution=family,
        cost=lambda x: ((x.double() - 0.5) ** 2).sum(-1),
    )
    report = check_objective(cls(), n_samples=20_000)
    assert report.passed, [c for c in report.checks if c.outcome == "fail"]


@pytest.mark.parametrize("name", registry.objectives.names())
def test_every_built_in_objective_passes_the_objective_suite(name):
    report = check_objective(registry.objectives.get(name)(), n_samples=20_000)
    assert report.passed, [c for c in report.checks if c.outcome == "fail"]


class _ScalarCost(GaussianSquare):
    """A cost that sums over the draws: a scalar instead of [*S]."""

    name = "test-scalar-cost"

    def cost(self, x, params):
        return (x**2).sum()


class _FalseBernoulli(GaussianSquare):
    """Claims the Bernoulli structure of a Gaussian."""

    name = "test-false-bernoulli"
    offers = GaussianSquare.offers | {gradbench.Capability.BERNOULLI}


def test_the_objective_suite_fails_a_wrong_cost_shape_and_a_false_claim():
    shapes = check_objective(_ScalarCost(), n_samples=2000)
    assert not shapes.passed
    assert any(c.check == "shapes" and "cost" in c.evidence for c in shapes.checks)
    claim = check_objective(_FalseBernoulli(), n_samples=2000)
    assert not claim.passed
    failed = [c for c in claim.checks if c.outcome == "fail"]
    assert [c.check for c in failed] == ["claim: Bernoulli logit"]
    assert "does not offer Bernoulli logit" in failed[0].evidence


@pytest.mark.parametrize("estimator", [Reinforce(), Reparam(), LeaveOneOut()])
def test_the_engine_refuses_a_wrong_cost_shape_for_every_estimator(estimator):
    result = run_pair(_ScalarCost(), estimator, RunConfig(n_samples=100, timing_repeats=0))
    assert result.status == "failed" and "cost returned shape ()" in result.reason


def test_an_objective_without_any_reference_is_one_line_naming_it():
    class NoLogProb(gradbench.ModelObjective):
        name = "test-no-log-prob"

        def build_model(self):
            return {"rate": torch.tensor([2.0])}

        def model_distribution(self, theta):
            return _Unscored(theta["rate"])

        def model_cost(self, x):
            return x.sum(-1)

    with pytest.raises(InputError, match="test-no-log-prob has no reference gradient"):
        run_comparison([NoLogProb()], ["reinforce"], n_samples=100)


class _Unscored(torch.distributions.Poisson):
    def log_prob(self, value):
        raise NotImplementedError


def test_check_command_checks_an_objective_and_fails_a_broken_plugin(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text(
        "import gradbench\n"
        "from gradbench.objectives.gaussian import GaussianSquare\n"
        "@gradbench.register_objective\n"
        "class Broken(GaussianSquare):\n"
        "    name = 'broken'\n"
        "    def cost(self, x, params):\n"
        "        return (x**2).sum()\n"
    )
    runner = CliRunner()
    good = runner.invoke(app, ["check", "gaussian-square", "-n", "2000"])
    assert good.exit_code == 0 and "passed" in good.stdout
    broken = runner.invoke(app, ["check", "broken", "-n", "2000", "--plugin", str(plugin)])
    assert broken.exit_code == 1 and "FAILED" in broken.stdout


class _FailsOnce(Reparam):
    """Raises on its 134th call, once: in the third round of calls of the 64 groups, after
    the second round has made a checkpoint."""

    calls = 0

    def estimate(self, objective, params, n, generator):
        type(self).calls += 1
        if type(self).calls == 134:
            raise RuntimeError("out of memory, say")
        return super().estimate(objective, params, n, generator)


def test_a_reference_interrupted_while_it_grows_is_left_as_it_was():
    objective = _NoClosedForm(dim=2)
    estimated._streams.clear()
    with pytest.raises(RuntimeError, match="out of memory"):
        _reference(objective, ReferencePlan(estimator=_FailsOnce(), samples=4 * 64 * 256))
    retried = _reference(objective, ReferencePlan(estimator=_FailsOnce(), samples=4 * 64 * 256))
    estimated._streams.clear()
    fresh = _reference(objective, ReferencePlan(estimator=Reparam(), samples=4 * 64 * 256))
    torch.testing.assert_close(retried.reference.gradient, fresh.reference.gradient)
    torch.testing.assert_close(retried.reference.standard_error, fresh.reference.standard_error)


def test_the_reference_does_not_depend_on_the_chunk_size():
    objective, plan = _NoClosedForm(dim=3), ReferencePlan()
    results = [
        run_pair(
            objective,
            Reinforce(),
            RunConfig(n_samples=5000, timing_repeats=0, chunk_size=chunk, reference=plan),
        )
        for chunk in (None, 64)
    ]
    first, second = (r.summary for r in results)
    assert results[0].reference_samples == results[1].reference_samples
    torch.testing.assert_close(first.reference, second.reference, rtol=0, atol=0)
