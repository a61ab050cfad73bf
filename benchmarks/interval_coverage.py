"""Coverage of 95% variance intervals: how often each method's interval holds the variance.

    cd benchmarks && python interval_coverage.py [--replications 2000] [--cases GLOB]

Each case draws ``replications`` independent runs of n estimates (float64) of a built-in
estimator on a built-in objective, cuts each run into the engine's 64 contiguous groups, and
asks every method of ``interval_methods.py`` for an interval of each coordinate's variance and
of their sum (the trace). The truth is exact where a closed form or quadrature gives it
(``gradbench.analysis.exact_variance``, two-point laws), else the variance of one long run,
whose own relative standard error is printed. Per method: the trace's coverage, the mean
coverage over coordinates, and the mean width of the trace's interval over the truth; κ̂ is
the median two-pass kurtosis of ‖g − ḡ‖ over the runs; "trusted" is the share of runs that
gradbench's warning leaves unflagged (n ≥ 100·κ̂ of the run) and their trace coverage.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from interval_methods import METHODS, group_moments, kurtosis_with_trace

from gradbench.analysis.exact_variance import (
    SeparableGaussian,
    pathwise_variance,
    score_function_variance,
)
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.estimators.augment_reinforce_merge import AugmentReinforceMerge as Arm
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import LeaveOneOut as Rloo
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianExp, GaussianSquare
from gradbench.objectives.logistic_regression import BayesianLogisticRegression
from gradbench.stats.intervals import SAMPLES_PER_KURTOSIS

GROUPS = 64
#: Estimates per drawn batch of runs (memory of one batch: 8 bytes × this × (P + 1) × ~4).
BATCH_VALUES = 2_000_000


@dataclass(frozen=True)
class Case:
    label: str
    objective: Objective
    estimator: Estimator
    n: int
    truth: Callable[[Objective, dict], tuple[torch.Tensor, float]]  # ([P] variances, rel. SE)


def gaussian_truth(variance_of: Callable) -> Callable:
    def truth(objective: Objective, params: dict) -> tuple[torch.Tensor, float]:
        return variance_of(SeparableGaussian.of(objective, params)), 0.0

    return truth


def bernoulli_reinforce_truth(objective: Objective, params: dict) -> tuple[torch.Tensor, float]:
    """g = f(b)(b − p): (1 − t)²(1 − p) with probability p, −t²p otherwise (one coordinate)."""
    p = torch.sigmoid(params["logit"])
    t = objective.target
    gap = (1 - t) ** 2 * (1 - p) + t**2 * p
    return p * (1 - p) * gap**2, 0.0


def long_run_truth(n_truth: int) -> Callable:
    """The variance of one run of ``n_truth`` estimates, and the relative SE of its trace
    from its 64-group jackknife."""

    def truth(
        objective: Objective, params: dict, estimator: Estimator
    ) -> tuple[torch.Tensor, float]:
        generator = torch.Generator().manual_seed(987_654)
        parts = []
        for start in range(0, n_truth, 20_000):
            m = min(20_000, n_truth - start)
            parts.append(estimator.estimate(objective, params, m, generator).detach())
        values = torch.cat(parts).unsqueeze(0)
        count, mean, m2 = group_moments(values, GROUPS)
        variance = values[0].var(0)
        low, high = METHODS["jackknife"](count, mean, m2)
        relative = float((high[0, -1] / low[0, -1]).log() / (2 * 1.96))
        return variance, relative

    truth.needs_estimator = True
    return truth


def cases() -> list[Case]:
    square = gaussian_truth(score_function_variance)
    path = gaussian_truth(pathwise_variance)
    out = []
    for n in (500, 2000, 20_000, 100_000):
        out.append(Case("reparam square μ=1 σ=1 k=3", GaussianSquare(), Reparam(), n, path))
        out.append(Case("reinforce square μ=1 σ=1 k=3", GaussianSquare(), Reinforce(), n, square))
    for n in (2000, 20_000):
        for mu, sigma, k in ((0.0, 1.0, 0.0), (1.0, 2.0, 3.0), (2.0, 0.5, -1.0)):
            objective = GaussianSquare(mu=mu, sigma=sigma, k=k)
            label = f"reinforce square μ={mu:g} σ={sigma:g} k={k:g}"
            out.append(Case(label, objective, Reinforce(), n, square))
        for k in (0.5, 1.0):
            objective = GaussianExp(k=k)
            out.append(Case(f"reparam exp k={k:g}", objective, Reparam(), n, path))
            out.append(Case(f"reinforce exp k={k:g}", objective, Reinforce(), n, square))
        for logit in (0.0, 1.0):
            toy = BernoulliToy(logit=logit)
            out.append(
                Case(
                    f"reinforce bernoulli θ={logit:g}",
                    toy,
                    Reinforce(),
                    n,
                    bernoulli_reinforce_truth,
                )
            )
            out.append(
                Case(f"rloo bernoulli θ={logit:g}", toy, Rloo(), n, long_run_truth(2_000_000))
            )
            out.append(Case(f"arm bernoulli θ={logit:g}", toy, Arm(), n, long_run_truth(2_000_000)))
    logreg = BayesianLogisticRegression()
    out.append(Case("reparam bayes-logreg", logreg, Reparam(), 2000, long_run_truth(400_000)))
    return out


def draw(case: Case, params: dict, runs: int, generator: torch.Generator) -> torch.Tensor:
    values = case.estimator.estimate(case.objective, params, runs * case.n, generator)
    return values.detach().double().view(runs, case.n, -1)


def evaluate(case: Case, replications: int, seed: int) -> dict[str, tuple[float, float, float]]:
    params = {k: v.to(torch.float64) for k, v in case.objective.parameters().items()}
    if getattr(case.truth, "needs_estimator", False):
        truth, truth_se = case.truth(case.objective, params, case.estimator)
    else:
        truth, truth_se = case.truth(case.objective, params)
    truth = torch.cat([truth, truth.sum().reshape(1)])  # [P + 1]
    generator = torch.Generator().manual_seed(seed)
    width = truth.numel()
    per_batch = max(1, BATCH_VALUES // (case.n * width))
    hits = {name: torch.zeros(width) for name in METHODS}
    widths = {name: 0.0 for name in METHODS}
    kurtosis = []
    kept = kept_hits = done = 0
    while done < replications:
        runs = min(per_batch, replications - done)
        values = draw(case, params, runs, generator)
        count, mean, m2 = group_moments(values, GROUPS)
        kappa = kurtosis_with_trace(values)
        kurtosis.append(kappa[:, -1])
        for name, method in METHODS.items():
            low, high, *flag = method(count, mean, m2, kurtosis=kappa, seed=done)
            if flag:
                trusted = case.n >= SAMPLES_PER_KURTOSIS * flag[0][:, -1]
                kept += int(trusted.sum())
                kept_hits += int(((low <= truth) & (truth <= high))[:, -1][trusted].sum())
            hits[name] += ((low <= truth) & (truth <= high)).double().sum(0)
            widths[name] += float(((high - low)[:, -1] / truth[-1]).sum())
        done += runs
    kappa = float(torch.cat(kurtosis).median())
    out = {}
    for name in METHODS:
        rate = hits[name] / replications
        out[name] = (float(rate[-1]), float(rate[:-1].mean()), widths[name] / replications)
    out["_"] = (kappa, truth_se, kept / replications, kept_hits / max(kept, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", default="*", help="fnmatch pattern on 'label n'")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    names = list(METHODS)
    print(
        f"{args.replications} runs per case; trace coverage (SE ≈ "
        f"{math.sqrt(0.95 * 0.05 / args.replications):.3f}) / mean coordinate coverage / "
        "trace width ÷ truth; κ̂: median kurtosis of ‖g − ḡ‖"
    )
    print(f"{'case':<32} {'n':>6} {'κ̂':>6} " + " ".join(f"{n:>18}" for n in names))
    for case in cases():
        key = f"{case.label} {case.n}"
        if not fnmatch.fnmatch(key, args.cases):
            continue
        start = time.perf_counter()
        result = evaluate(case, args.replications, args.seed)
        kappa, truth_se, kept, kept_rate = result.pop("_")
        cells = " ".join(f"{t:.3f}/{c:.3f}/{w:5.3f}".rjust(18) for t, c, w in result.values())
        extra = f"  trusted {kept:4.0%}: {kept_rate:.3f}" if kept else "  trusted   0%"
        extra += f"  truth ±{truth_se:.1%}" if truth_se else ""
        print(
            f"{case.label:<32} {case.n:>6} {kappa:>6.1f} {cells}"
            f"  {time.perf_counter() - start:4.0f}s{extra}",
            flush=True,
        )


if __name__ == "__main__":
    main()
