#!/usr/bin/env bash
# The survey's Figure 2/3 setting as curves (Mohamed, Rosca, Figurnov & Mnih 2020, JMLR):
# x ~ N(1, 1), f = (x − k)², exp(−k x²) and cos(k x), k swept; per-coordinate variance of the
# score function (reinforce, and with the optimal baseline), pathwise (reparam) and coupled
# measure-valued (mvd) estimates of ∂/∂μ and ∂/∂σ, with the exact variance drawn beside them.
#
#     bash benchmarks/survey_figures.sh [OUT]     (from the repository root; OUT: results)
#
# Writes OUT/survey-k-{square,exp,cos}.csv (one row per task), -aggregate.csv, -detail.csv
# (per coordinate), .png and .svg; float64, 10⁵ estimates per point, seed 0.
set -euo pipefail
out="${1:-results}"

figure() {
    local name="$1"
    shift
    local stem="$out/survey-k-$name"
    gradbench sweep "$@" -e reinforce -e reparam -e mvd -e optimal-baseline \
        -n 100000 --dtype float64 --seed 0 \
        --csv "$stem.csv" --detail-csv "$stem-detail.csv" --overwrite
    for suffix in png svg; do
        gradbench plot "$stem.csv" --detail "$stem-detail.csv" --out "$stem.$suffix" --overwrite
    done
    rm -rf "$stem.csv.parts"  # the sweep's journal of finished tasks, for --resume only
}

figure square gaussian-square --param-scan k=-3:3:13
figure exp gaussian-exp --param-scan k=0.1:10:11:log
figure cos gaussian-cos --param-scan k=0.5:10:20
