"""Coverage of the variance interval: how often the 95% interval holds the exact variance.

    python benchmarks/interval_coverage.py [--replications 400]

Each case draws ``replications`` independent runs of n estimates from a built-in estimator on a
built-in objective, float64, and counts the runs whose ``variance_ci`` contains the exact
per-estimate variance (closed forms from docs/measurement.md). The binomial standard error of each
coverage is printed next to it.
"""

from __future__ import annotations

import argparse
import math

import torch

from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianSquare
from gradbench.stats.accumulator import GradientStatistics


def bernoulli_reinforce_variance(target: float) -> float:
    """θ = 0, p = ½: g = f(b)(b − ½) takes ±((1 − t)² or t²)/2 with equal probability."""
    high, low = (1 - target) ** 2 / 2, -(target**2) / 2
    mean = (high + low) / 2
    return ((high - mean) ** 2 + (low - mean) ** 2) / 2


# (label, objective, estimator, exact trace of the covariance, n)
CASES = [
    ("reparam, gaussian-square", GaussianSquare(), Reparam(), 4.0 + 24.0, 2000),
    ("reparam, gaussian-square", GaussianSquare(), Reparam(), 4.0 + 24.0, 20_000),
    ("reinforce, gaussian-square", GaussianSquare(), Reinforce(), 87.0 + 346.0, 2000),
    ("reinforce, gaussian-square", GaussianSquare(), Reinforce(), 87.0 + 346.0, 20_000),
    (
        "reinforce, bernoulli-toy",
        BernoulliToy(),
        Reinforce(),
        bernoulli_reinforce_variance(0.499),
        2000,
    ),
]


def coverage(objective, estimator, truth: float, n: int, replications: int, seed: int) -> float:
    params = {k: v.to(torch.float64) for k, v in objective.parameters().items()}
    reference = objective.exact_gradient(params)
    generator = torch.Generator().manual_seed(seed)
    covered = 0
    for _ in range(replications):
        statistics = GradientStatistics(reference, n)
        statistics.add(estimator.estimate(objective, params, n, generator))
        low, high = statistics.summary().variance_ci
        covered += low <= truth <= high
    return covered / replications


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'case':<28} {'n':>7} {'coverage':>9}  (nominal 0.95, {args.replications} runs)")
    for label, objective, estimator, truth, n in CASES:
        rate = coverage(objective, estimator, truth, n, args.replications, args.seed)
        se = math.sqrt(rate * (1 - rate) / args.replications)
        print(f"{label:<28} {n:>7} {rate:>9.3f} ± {se:.3f}")


if __name__ == "__main__":
    main()
