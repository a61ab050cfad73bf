"""pytest-benchmark: the engine, a hand-written loop and the closed form, side by side.

    pytest benchmarks/test_engine_speed.py --benchmark-only --benchmark-group-by=param:case

Not part of the test suite (the tests never time anything). Each benchmark stores its estimates
per second in ``extra_info``; within a group the three rows ran in the same process, so their
ratio is the comparison (``benchmarks/throughput.py`` prints the ratios directly).
"""

from __future__ import annotations

import pytest
import torch
from throughput import closed_form, hand_loop

from gradbench.engine.run import RunConfig, choose_chunk_size, run_pair
from gradbench.estimators.finite_difference import CentralDifference
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianSquare

ENGINE_SAMPLES = 200_000
LOOP_SAMPLES = 500

CASES = {
    "gaussian-square D=16 reinforce": (GaussianSquare(dim=16), Reinforce()),
    "gaussian-square D=16 reparam": (GaussianSquare(dim=16), Reparam()),
    "gaussian-square D=16 fd": (GaussianSquare(dim=16), CentralDifference()),
    "gaussian-square D=1024 reparam": (GaussianSquare(dim=1024), Reparam()),
    "bernoulli-toy reinforce": (BernoulliToy(), Reinforce()),
}


def parameters(objective):
    return {k: v.float() for k, v in objective.parameters().items()}


def record(benchmark, estimates: int) -> None:
    benchmark.extra_info["estimates_per_s"] = estimates / benchmark.stats.stats.min


@pytest.mark.parametrize("case", CASES)
def test_engine(benchmark, case):
    objective, estimator = CASES[case]
    config = RunConfig(n_samples=ENGINE_SAMPLES, timing_repeats=0)
    benchmark.pedantic(run_pair, args=(objective, estimator, config), rounds=3, warmup_rounds=1)
    record(benchmark, ENGINE_SAMPLES)


@pytest.mark.parametrize("case", CASES)
def test_hand_written_loop(benchmark, case):
    objective, estimator = CASES[case]
    params, generator = parameters(objective), torch.Generator().manual_seed(0)
    benchmark.pedantic(
        hand_loop, args=(objective, estimator, params, LOOP_SAMPLES, generator), rounds=3
    )
    record(benchmark, LOOP_SAMPLES)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.startswith("gaussian-square") and "reparam" in c]
)
def test_closed_form(benchmark, case):
    objective, _ = CASES[case]
    params, generator = parameters(objective), torch.Generator().manual_seed(0)
    config = RunConfig(n_samples=ENGINE_SAMPLES)
    chunk = choose_chunk_size(objective, params, 1, config)
    benchmark.pedantic(
        closed_form, args=(objective, params, ENGINE_SAMPLES, chunk, generator), rounds=3
    )
    record(benchmark, ENGINE_SAMPLES)
