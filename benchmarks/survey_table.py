"""The survey's Figure 2/3 setting, regenerated: every applicable estimator on x ~ N(1, 1).

    python benchmarks/survey_table.py [--samples 1000000] [--out results]

Objectives: f = (x − k)² for k = 1, 3, −3 and f = cos(5x), one coordinate (Mohamed, Rosca,
Figurnov & Mnih 2020, JMLR, Figures 2 and 3). Writes ``survey.csv`` (one row per pair, as
``gradbench compare --csv``), ``survey-detail.csv`` (per coordinate) and ``survey.md`` (the
per-sample variance of ∂/∂μ and ∂/∂σ with their 95% intervals), float64, seed 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradbench import run_comparison
from gradbench.objectives.gaussian import GaussianCos, GaussianSquare
from gradbench.records.files import write_atomic
from gradbench.report.format import number

ESTIMATORS = [
    "reinforce",
    "rloo",
    "optimal-baseline",
    "reparam",
    "rqmc-reparam",
    "delta-method",
    "delta-pathwise",
    "mvd",
    "mvd-uncoupled",
    "fd",
    "spsa",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    objectives = [GaussianSquare(k=k) for k in (1.0, 3.0, -3.0)] + [GaussianCos(k=5.0)]
    comparison = run_comparison(
        objectives, ESTIMATORS, n_samples=args.samples, dtype="float64", timing_repeats=1
    )
    comparison.write_csv(args.out / "survey.csv")
    comparison.write_detail_csv(args.out / "survey-detail.csv")

    details = comparison.detail_table()
    table = comparison.table()
    lines = [
        "| cost | estimator | evals | variance of ∂/∂μ [95% CI] | variance of ∂/∂σ [95% CI] "
        "| bias p |",
        "|---|---|---:|---:|---:|---:|",
    ]
    offset = 0  # detail rows follow the ok rows, grad_dim rows each
    for index, row in enumerate(table.to_dict("records")):
        if row["status"] != "ok":
            continue
        pair = details.iloc[offset : offset + row["grad_dim"]]
        offset += row["grad_dim"]
        objective = objectives[index // len(ESTIMATORS)]
        if isinstance(objective, GaussianSquare):
            sign = "−" if objective.k >= 0 else "+"
            cost = f"(x {sign} {abs(objective.k):g})²"
        else:
            cost = f"cos({objective.k:g}x)"
        cells = [
            f"{number(v)} [{number(lo)}, {number(hi)}]"
            for v, lo, hi in zip(
                pair.variance, pair.variance_ci_low, pair.variance_ci_high, strict=True
            )
        ]
        lines.append(
            f"| {cost} | {row['estimator']} | {row['evals_per_sample']} | {cells[0]} | "
            f"{cells[1]} | {number(row['bias_p'])} |"
        )
    lines.append("")
    lines.append(
        f"x ~ N(1, 1), n = {args.samples} per-sample estimates per pair, float64, seed 0; "
        "made by `python benchmarks/survey_table.py`."
    )
    write_atomic(args.out / "survey.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
