"""Per-coordinate variance and signal-to-noise ratio |mean| / sd of one estimate, by swept
setting, from a sweep's ``--detail-csv``, as a Markdown table on stdout.

    python benchmarks/snr_table.py results/iwae-k-linear-gaussian-detail.csv --x param_particles

One row per (coordinate, estimator), one column per value of the swept setting; each cell is
"variance / SNR" of replicate 0. The SNR of the mean gradient per estimate is what decides how
many estimates a step needs (Rainforth et al. 2018): |E g_d| / sd(g_d). With ``--summary``
(for θ of thousands of coordinates, a network's weights), one row per estimator instead:
"total variance / median SNR" over the coordinates whose variance is not 0.
"""

from __future__ import annotations

import argparse

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("detail", help="a sweep's --detail-csv")
    parser.add_argument("--x", default="param_particles", help="the swept column")
    parser.add_argument("--summary", action="store_true", help="one row per estimator")
    args = parser.parse_args()
    rows = pd.read_csv(args.detail)
    rows = rows[rows["replicate"] == 0]
    rows = rows.assign(snr=rows["mean_grad"].abs() / rows["variance"] ** 0.5)
    if args.summary:
        print_summary(rows, args)
    else:
        print_per_coordinate(rows, args)


def print_summary(rows: pd.DataFrame, args: argparse.Namespace) -> None:
    """Total variance / median SNR per estimator and swept value."""
    values = sorted(rows[args.x].unique())
    print("Total variance / median SNR over the coordinates of nonzero variance; columns:")
    print(f"{args.x} (command: `python benchmarks/snr_table.py {args.detail} --x {args.x}")
    print("--summary`).\n")
    print("| " + " | ".join([rows["objective"].iloc[0], *(f"{v:g}" for v in values)]) + " |")
    print("|" + "---|" * (len(values) + 1))
    for estimator, group in rows.groupby("estimator", sort=False):
        line = [estimator]
        for value in values:
            cell = group[group[args.x] == value]
            varying = cell[cell["variance"] > 0]
            if varying.empty:
                line.append("–")
            else:
                line.append(f"{cell['variance'].sum():.3g} / {varying['snr'].median():.3g}")
        print("| " + " | ".join(line) + " |")


def print_per_coordinate(rows: pd.DataFrame, args: argparse.Namespace) -> None:
    """Variance / SNR per coordinate, estimator and swept value."""
    values = sorted(rows[args.x].unique())
    header = [rows["objective"].iloc[0], "estimator", *(f"{v:g}" for v in values)]
    print(f"Variance / SNR of one estimate per coordinate; columns: {args.x} (command:")
    print(f"`python benchmarks/snr_table.py {args.detail} --x {args.x}`).\n")
    print("| " + " | ".join(["coordinate", *header[1:]]) + " |")
    print("|" + "---|" * len(header))
    for (param, estimator), group in rows.groupby(["param", "estimator"], sort=False):
        cells = group.set_index(args.x)
        line = [param, estimator]
        for value in values:
            if value in cells.index:
                cell = cells.loc[value]
                line.append(f"{cell['variance']:.3g} / {cell['snr']:.3g}")
            else:
                line.append("–")
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
