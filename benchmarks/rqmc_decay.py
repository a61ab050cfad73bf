"""How the variance of rqmc-reparam falls with its m points, against plain Monte Carlo's 1/m.

    python benchmarks/rqmc_decay.py [--estimates 10000] [--seed 0] [--out results]

For m = 1, 2, 4, …, 1024 it draws ``estimates`` i.i.d. estimates of ``rqmc-reparam`` (each the
mean of m pathwise gradients over one scrambled Sobol net, float64, CPU) on gaussian-square,
gaussian-exp and gaussian-cos at their default settings (dim 1) and on gaussian-cos with dim 8,
and compares the variance of one estimate with reparam's exact per-sample variance
(quadrature, :mod:`gradbench.analysis.exact_variance`): plain Monte Carlo with m draws has
variance reparam/m, so variance × m / reparam is the variance per evaluation relative to
reparam's (1 at m = 1, where the net is one uniform point). Writes

* ``rqmc-decay.csv``: objective, m, coordinate, variance of one estimate and its standard
  error √((m₄ − s⁴)/n), variance × m, reparam's variance, and the ratio;
* ``rqmc-decay.md``: the ratio at a few m and the log-log slope over m = 4 … 256 (weighted
  least squares, ± its standard error), for ``mu[0]`` and ``sigma[0]``;
* ``rqmc-decay.png``: variance against m, log-log, with the 1/m line of plain Monte Carlo.

In the dim-8 objective every gradient coordinate depends on one noise coordinate, a 1-D
projection of the 8-D net, which is itself a scrambled 1-D net: its coordinates follow the law
of the dim-1 objective's.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from gradbench.core.objective import Objective
from gradbench.core.params import ParamLayout
from gradbench.estimators.quasi_monte_carlo import RandomizedQuasiMonteCarlo
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.gaussian import GaussianCos, GaussianExp, GaussianSquare

POINTS = [2**k for k in range(11)]
SLOPE_POINTS = [2**k for k in range(2, 9)]
TABLE_POINTS = [1, 4, 16, 64, 256, 1024]
SHOWN = ("mu[0]", "sigma[0]")
#: Draws per call of the estimator, so memory stays bounded at m = 1024 and dim 8.
CHUNK_DRAWS = 2**18
COMMAND = "python benchmarks/rqmc_decay.py"


def label(objective: Objective) -> str:
    return f"{objective.name} dim={objective.config['dim']}"


def estimates(objective: Objective, m: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n estimates ``[n, P]`` of rqmc-reparam with m points, in chunks of CHUNK_DRAWS draws."""
    params = objective.parameters()
    estimator = RandomizedQuasiMonteCarlo(points=m)
    chunk = max(1, CHUNK_DRAWS // m)
    parts = [
        estimator.estimate(objective, params, min(chunk, n - start), generator)
        for start in range(0, n, chunk)
    ]
    return torch.cat(parts)


def variance_and_se(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """s² of each column and its standard error √((m₄ − s⁴)/n)."""
    centred = values - values.mean(0)
    second, fourth = centred.pow(2).mean(0), centred.pow(4).mean(0)
    return values.var(0), ((fourth - second**2) / values.shape[0]).sqrt()


def sweep(objective: Objective, n: int, generator: torch.Generator) -> list[dict]:
    params = objective.parameters()
    reparam = Reparam().exact_variance(objective, params)
    labels = ParamLayout.of(params).labels()
    rows = []
    for m in POINTS:
        variance, se = variance_and_se(estimates(objective, m, n, generator))
        for j, coordinate in enumerate(labels):
            rows.append(
                {
                    "objective": label(objective),
                    "m": m,
                    "coordinate": coordinate,
                    "variance": float(variance[j]),
                    "variance_se": float(se[j]),
                    "variance_times_m": m * float(variance[j]),
                    "reparam_variance": float(reparam[j]),
                    "ratio": m * float(variance[j]) / float(reparam[j]),
                }
            )
    return rows


def slope(rows: list[dict]) -> tuple[float, float]:
    """Weighted least-squares slope of log variance on log m over SLOPE_POINTS and its
    standard error, with weights 1/se(log s²)² = (s²/se)²."""
    used = [r for r in rows if r["m"] in SLOPE_POINTS]
    x = np.log([r["m"] for r in used])
    y = np.log([r["variance"] for r in used])
    w = np.array([(r["variance"] / r["variance_se"]) ** 2 for r in used])
    centred = x - np.average(x, weights=w)
    spread = float(np.sum(w * centred**2))
    return float(np.sum(w * centred * y) / spread), 1 / math.sqrt(spread)


def markdown(rows: list[dict], objectives: list[Objective], n: int, seed: int) -> str:
    header = " | ".join(f"m={m}" for m in TABLE_POINTS)
    lines = [
        "# rqmc-reparam: variance against the number of points m",
        "",
        f"Made by `{COMMAND} --estimates {n} --seed {seed}` (float64, CPU). Each cell is",
        "variance × m / reparam's exact variance: the variance per evaluation relative to plain",
        "Monte Carlo (1 at m = 1; below 1: fewer evaluations for the same variance). The slope",
        "is that of log variance on log m over m = 4 … 256 (plain Monte Carlo: −1), ± the",
        "standard error that the variances' errors give it; the log-log curve bends, so the",
        "slope over another range differs by more than that.",
        "",
        f"| objective | coordinate | {header} | slope |",
        "|---|---|" + "---:|" * (len(TABLE_POINTS) + 1),
    ]
    for objective in objectives:
        for coordinate in SHOWN:
            mine = [r for r in rows if r["objective"] == label(objective)]
            mine = [r for r in mine if r["coordinate"] == coordinate]
            ratio = {r["m"]: r["ratio"] for r in mine}
            fitted, error = slope(mine)
            cells = " | ".join(f"{ratio[m]:.3g}" for m in TABLE_POINTS)
            lines.append(
                f"| {label(objective)} | {coordinate} | {cells} | {fitted:.3f} ± {error:.3f} |"
            )
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], objectives: list[Objective], path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for axis, objective in zip(axes.flat, objectives, strict=True):
        for coordinate, colour in zip(SHOWN, ("tab:blue", "tab:orange"), strict=True):
            mine = [
                r
                for r in rows
                if r["objective"] == label(objective) and r["coordinate"] == coordinate
            ]
            m = np.array([r["m"] for r in mine])
            variance = np.array([r["variance"] for r in mine])
            se = np.array([r["variance_se"] for r in mine])
            reparam = mine[0]["reparam_variance"]
            axis.errorbar(
                m, variance, yerr=2 * se, fmt="o-", color=colour, ms=4, label=f"rqmc {coordinate}"
            )
            axis.plot(
                m, reparam / m, "--", color=colour, alpha=0.7, label=f"reparam/m {coordinate}"
            )
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_title(label(objective))
        axis.set_xlabel("points m")
        axis.set_ylabel("variance of one estimate")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("rqmc-reparam vs plain Monte Carlo (dashed: 1/m), ±2 standard errors")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimates", type=int, default=10_000, help="estimates per m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    objectives = [GaussianSquare(), GaussianExp(), GaussianCos(), GaussianCos(dim=8)]
    generator = torch.Generator().manual_seed(args.seed)
    rows = [row for o in objectives for row in sweep(o, args.estimates, generator)]
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "rqmc-decay.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows, objectives, args.estimates, args.seed)
    (args.out / "rqmc-decay.md").write_text(table)
    figure(rows, objectives, args.out / "rqmc-decay.png")
    print(table)


if __name__ == "__main__":
    main()
