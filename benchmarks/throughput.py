"""Estimates per second of the engine against a hand-written loop and a hand-derived closed form.

    python benchmarks/throughput.py [--device cpu] [--samples 1000000] [--loop-samples 2000]

Everything runs in one process, interleaved, best of ``--repeats``, so the ratios compare like
with like on a shared, noisy machine. For each built-in estimator on ``gaussian-square`` (D = 16
and D = 1024) and on ``bernoulli-toy``:

* ``engine``: :func:`gradbench.run_pair`, estimates and their streaming statistics;
* ``estimates``: the estimator's own vectorised rule in the engine's chunks, no statistics;
* ``loop``: what users write by hand, one sample at a time, one ``backward()`` per sample
  (finite differences: one perturbed cost per coordinate and side);
* ``closed form`` (pathwise on gaussian-square): ∂μ = 2(x − k), ∂σ = 2(x − k)ε, no autograd.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.core.params import ParamLayout, Params
from gradbench.engine.run import RunConfig, choose_chunk_size, run_pair
from gradbench.engine.timing import synchronize
from gradbench.estimators.finite_difference import CentralDifference
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianSquare


def hand_loop(objective: Objective, estimator: Estimator, params: Params, n: int, generator):
    """Per-sample estimates the way one writes them without gradbench."""
    layout = ParamLayout.of(params)
    rows = []
    for _ in range(n):
        noise = objective.noise(1, params, generator)[0]
        if isinstance(estimator, CentralDifference):
            theta = layout.flatten(params)
            step = estimator.steps(theta)
            row = []
            for j in range(theta.numel()):
                up, down = theta.clone(), theta.clone()
                up[j] += step[j]
                down[j] -= step[j]
                costs = [
                    objective.cost(objective.transform(noise, p), p)
                    for p in (layout.unflatten(up), layout.unflatten(down))
                ]
                row.append((costs[0] - costs[1]) / (2 * step[j]))
            rows.append(torch.stack(row))
            continue
        leaves = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        if isinstance(estimator, Reparam):
            loss = objective.cost(objective.transform(noise, leaves), leaves)
        else:
            x = objective.transform(noise, params).detach()
            cost = objective.cost(x, leaves)
            loss = cost.detach() * objective.distribution(leaves).log_prob(x) + cost
        loss.backward()
        rows.append(layout.flatten({k: v.grad for k, v in leaves.items()}))
    return torch.stack(rows)


def closed_form(objective: GaussianSquare, params: Params, n: int, chunk: int, generator):
    """Pathwise gradients of Σ(x − k)² by hand, in the engine's chunks."""
    k = objective.k
    done = 0
    while done < n:
        m = min(chunk, n - done)
        eps = objective.noise(m, params, generator)
        slope = 2 * (params["mu"] + params["sigma"] * eps - k)
        torch.cat([slope, slope * eps], dim=1)
        done += m


def rate(work: Callable[[], object], count: int, repeats: int, device: torch.device) -> float:
    """Best of ``repeats``: ``count`` estimates per wall second, device synchronised."""
    best = 0.0
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        work()
        synchronize(device)
        best = max(best, count / (time.perf_counter() - start))
    return best


def measure(objective, estimator, params, args, device: torch.device) -> str:
    """One row of the table: rates of the engine, its estimates, the loop, the closed form."""
    n = args.samples
    evals = estimator.evaluations(objective, params)
    if evals > 64:  # 2P evaluations of a large cost per estimate: a few hundred suffice
        n = min(n, 500)
    config = RunConfig(n_samples=n, timing_repeats=0, device=device)
    chunk = choose_chunk_size(objective, params, evals, config)
    generator = torch.Generator(device=device).manual_seed(0)
    loop_n = max(10, args.loop_samples // max(1, evals // 8))

    def estimates_only() -> None:
        done = 0
        while done < n:
            m = min(chunk, n - done)
            estimator.estimate(objective, params, m, generator)
            done += m

    engine = rate(lambda: run_pair(objective, estimator, config), n, args.repeats, device)
    only = rate(estimates_only, n, args.repeats, device)
    loop = rate(
        lambda: hand_loop(objective, estimator, params, loop_n, generator),
        loop_n,
        args.repeats,
        device,
    )
    label = f"{objective.name} D={int(objective.setting('dim'))}"
    line = f"{label:<22} {estimator.name:<10} {engine:>9.3g} {only:>9.3g} {loop:>9.3g}"
    line += f" {engine / loop:>12.3g}"
    if isinstance(objective, GaussianSquare) and isinstance(estimator, Reparam):
        closed = rate(
            lambda: closed_form(objective, params, n, chunk, generator), n, args.repeats, device
        )
        line += f" {closed:>12.3g} {engine / closed:>14.2f} {only / closed:>16.2f}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--loop-samples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    cases = [
        (GaussianSquare(dim=16), [Reinforce(), Reparam(), CentralDifference()]),
        (GaussianSquare(dim=1024), [Reinforce(), Reparam(), CentralDifference()]),
        (BernoulliToy(), [Reinforce(), CentralDifference()]),
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, float32, estimates per second")
    header = f"{'objective':<22} {'estimator':<10} {'engine':>9} {'estimates':>9} {'loop':>9}"
    print(f"{header} {'engine/loop':>12} {'closed form':>12} {'engine/closed':>14} "
          f"{'estimates/closed':>16}")  # fmt: skip
    for objective, estimators in cases:
        params = {
            k: v.to(device=device, dtype=torch.float32) for k, v in objective.parameters().items()
        }
        for estimator in estimators:
            print(measure(objective, estimator, params, args, device), flush=True)


if __name__ == "__main__":
    main()
