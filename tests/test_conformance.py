"""The conformance suite over every registered estimator, as `gradbench check` runs it.

Each unbiasedness test fails a correct estimator with probability ≤ 1e-4 (Bonferroni z-test
at level 1e-4), ≤ 6e-4 for the six objectives of one estimator's suite.
"""

from __future__ import annotations

import pytest
import torch

from gradbench.extend import registry
from gradbench.extend.conformance import CHECK_OBJECTIVES, FAIL, check_estimator


@pytest.mark.parametrize("name", registry.estimators.names())
def test_every_registered_estimator_conforms(name):
    report = check_estimator(registry.estimators.get(name)(), n_samples=50_000, seed=1)
    failures = [check for check in report.checks if check.outcome == FAIL]
    assert report.passed, failures


@pytest.mark.parametrize("objective", CHECK_OBJECTIVES, ids=lambda cls: cls.name)
def test_check_objectives_have_exact_gradients(objective):
    """Each conformance objective's gradient against central differences of its expectation."""
    instance = objective()
    params = instance.parameters()
    exact = instance.exact_gradient(params)
    flat = torch.cat([v.reshape(-1) for v in params.values()])
    sizes = [v.numel() for v in params.values()]

    def expectation(vector):
        pieces = {
            name: piece.reshape(value.shape)
            for (name, value), piece in zip(params.items(), torch.split(vector, sizes), strict=True)
        }
        return float(instance.expected_cost(pieces))

    step = 1e-6
    numeric = torch.tensor(
        [
            (expectation(flat + step * e) - expectation(flat - step * e)) / (2 * step)
            for e in torch.eye(flat.numel(), dtype=torch.float64)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(exact, numeric, rtol=1e-6, atol=1e-8)


def test_every_built_in_objective_declares_the_capabilities_it_has():
    """`gradbench list` reads capabilities off the class (building a model objective loads
    data and weights); a run reads them off the distribution. They must agree."""
    from gradbench.extend import registry

    for name, entry in registry.objectives.entries().items():
        if entry.origin == "built-in":
            objective = entry.cls()
            assert objective.capabilities() == entry.cls.declared_capabilities(), name
