"""The closed-form rules (Objective.score of the score-function estimators, Objective.pathwise
of the pathwise ones) against autograd's."""

from __future__ import annotations

import pytest
import torch

from gradbench.core.objective import Objective
from gradbench.estimators.moving_average import MovingAverageBaseline
from gradbench.estimators.optimal_baseline import OptimalBaseline
from gradbench.estimators.quasi_monte_carlo import RandomizedQuasiMonteCarlo
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import BatchMean, LeaveOneOut
from gradbench.extend.objective_conformance import FAIL, PASS, check_objective
from gradbench.objectives.gaussian import GaussianCos, GaussianExp, GaussianSquare
from gradbench.objectives.logistic_regression import BayesianLogisticRegression


def estimates(estimator, objective, closed_form: bool, monkeypatch) -> torch.Tensor:
    """Estimates at the objective's θ in float64 from a fixed seed, with the objective's
    closed forms (score, pathwise gradient) or (``closed_form=False``) with autograd's."""
    if not closed_form:
        monkeypatch.setattr(type(objective), "score", Objective.score)
        monkeypatch.setattr(type(objective), "pathwise", Objective.pathwise)
    params = objective.parameters()
    estimator.reset(objective, params)
    try:
        return estimator.estimate(objective, params, 512, torch.Generator().manual_seed(3))
    finally:
        monkeypatch.undo()


def closed_and_autograd(estimator, objective, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The estimates with the objective's closed forms and those by autograd, same draws."""
    return (
        estimates(estimator(), objective, True, monkeypatch),
        estimates(estimator(), objective, False, monkeypatch),
    )


ESTIMATORS = [Reinforce, MovingAverageBaseline, OptimalBaseline, LeaveOneOut, BatchMean]


@pytest.mark.parametrize("make_estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "make_objective", [lambda: GaussianSquare(dim=5), GaussianCos, BayesianLogisticRegression]
)
def test_the_closed_form_score_gives_autograds_estimates(
    make_estimator, make_objective, monkeypatch
):
    """Same draws, same estimates: the closed form differs from autograd only by float64
    rounding of a few operations per coordinate."""
    closed, by_autograd = closed_and_autograd(make_estimator, make_objective(), monkeypatch)
    scale = by_autograd.abs().max()
    torch.testing.assert_close(closed, by_autograd, rtol=1e-9, atol=1e-12 * float(scale))


class WrongScore(GaussianSquare):
    """∂/∂σ missing its −1/σ: the check must catch it."""

    name = "wrong-score"

    def score(self, x, params):
        z = (x - params["mu"]) / params["sigma"]
        return torch.cat([z / params["sigma"], z * z / params["sigma"]], dim=-1)


class WrongPathwise(GaussianSquare):
    """c'(x) = 2x, the shift k forgotten: the check must catch it."""

    name = "wrong-pathwise"

    def coordinate_slope(self, x):
        return 2 * x


def test_the_objective_check_compares_closed_forms_with_autograd():
    outcomes = {
        name: {c.check: c.outcome for c in check_objective(objective(), n_samples=2000).checks}
        for name, objective in (
            ("right", GaussianSquare),
            ("wrong score", WrongScore),
            ("wrong pathwise", WrongPathwise),
        )
    }
    assert outcomes["right"]["closed-form score"] == PASS
    assert outcomes["right"]["closed-form pathwise gradient"] == PASS
    assert outcomes["wrong score"]["closed-form score"] == FAIL
    assert outcomes["wrong score"]["closed-form pathwise gradient"] == PASS
    assert outcomes["wrong pathwise"]["closed-form pathwise gradient"] == FAIL
    assert outcomes["wrong pathwise"]["closed-form score"] == PASS


class QuarticWithoutSlope(GaussianSquare):
    """A user's subclass that redefines c and not c′: GaussianSquare's slope is not its own."""

    name = "quartic-without-slope"

    def coordinate_cost(self, x):
        return (x - self.k) ** 4


def test_a_subclass_that_redefines_the_cost_alone_gets_no_inherited_slope():
    objective = QuarticWithoutSlope()
    params = objective.parameters()
    assert objective.pathwise(objective.noise(2, params, torch.Generator()), params) is None


class SharedSigma(GaussianSquare):
    """A user's subclass with one σ for all three coordinates (broadcast)."""

    name = "shared-sigma"

    def parameters(self):
        params = super().parameters()
        return {"mu": params["mu"], "sigma": params["sigma"][:1]}


def test_parameters_that_broadcast_get_no_closed_form():
    """μ [3] and σ [1]: the closed forms would write into columns of the wrong width, so they
    stand aside and autograd gives the estimates."""
    objective = SharedSigma(dim=3)
    params = objective.parameters()
    noise = objective.noise(4, params, torch.Generator())
    assert objective.pathwise(noise, params) is None
    assert objective.score(objective.transform(noise, params), params) is None


PATHWISE = [Reparam, lambda: RandomizedQuasiMonteCarlo(points=8)]


@pytest.mark.parametrize("make_estimator", PATHWISE)
@pytest.mark.parametrize(
    "make_objective", [lambda: GaussianSquare(dim=5), lambda: GaussianExp(k=0.3), GaussianCos]
)
def test_the_closed_form_pathwise_gradient_gives_autograds_estimates(
    make_estimator, make_objective, monkeypatch
):
    """Same noise, same estimates: c'(x) and c'(x) ⊙ ε by hand against autograd through
    μ + σ ⊙ ε and c, float64 rounding apart."""
    objective = make_objective()
    params = objective.parameters()
    noise = objective.noise(2, params, torch.Generator().manual_seed(0))
    assert objective.pathwise(noise, params) is not None
    closed, by_autograd = closed_and_autograd(make_estimator, objective, monkeypatch)
    scale = by_autograd.abs().max()
    torch.testing.assert_close(closed, by_autograd, rtol=1e-9, atol=1e-12 * float(scale))


class WithCostParameter(GaussianSquare):
    """A user's subclass: a shift s that only the cost sees (its score is 0)."""

    name = "with-cost-parameter"

    def parameters(self):
        return {**super().parameters(), "shift": torch.tensor([0.5, -1.0], dtype=torch.float64)}

    def cost(self, x, params):
        return ((x - params["shift"].sum()) ** 2).sum(-1)


@pytest.mark.parametrize("make_estimator", ESTIMATORS + PATHWISE)
def test_a_subclass_with_a_cost_parameter_keeps_autograds_estimates(make_estimator, monkeypatch):
    """The closed-form score covers μ and σ, gives 0 for the shift's score and leaves ∇f to
    autograd; the closed-form pathwise gradient stands aside (the subclass has a cost of its
    own): the same estimates as autograd through the whole surrogate."""
    objective = WithCostParameter()
    params = objective.parameters()
    assert objective.pathwise(objective.noise(2, params, torch.Generator()), params) is None
    closed, by_autograd = closed_and_autograd(make_estimator, objective, monkeypatch)
    assert closed.shape[1] == sum(v.numel() for v in objective.parameters().values())
    torch.testing.assert_close(closed, by_autograd, rtol=1e-9, atol=1e-9)
