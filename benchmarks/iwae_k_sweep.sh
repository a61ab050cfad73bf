#!/usr/bin/env bash
# The K sweep of the importance-weighted bounds (Tucker, Lawson, Gu & Maddison 2019, Figure 1;
# Rainforth et al. 2018): per-coordinate variance, bias and signal-to-noise ratio of the IWAE
# pathwise (reparam) and score-function (reinforce) gradients, DReG, STL and VIMCO as the
# particles K grow.
#
#     bash benchmarks/iwae_k_sweep.sh [OUT [FIGURE ...]]   (from the repository root)
#
# OUT defaults to results; FIGURE is any of linear-gaussian, discrete, vae-gaussian (default:
# all three).
# Writes OUT/iwae-k-{linear-gaussian,discrete,vae-gaussian}.csv (one row per task),
# -aggregate.csv, -detail.csv (per coordinate), .png (per coordinate where there are at most 6,
# else the total variance), and -snr.md (variance and |mean|/sd per coordinate and K, from the
# detail CSV; for the VAE's 2344 weights, their total and median); float64, seed 0. The VAE's
# detail CSV (12 MB) is not committed. References: exact for K ≤ 4 on the
# linear-Gaussian model (quadrature) and K ≤ 10 on the discrete one (enumeration); beyond, and
# on the VAE, estimated with dreg (the least noisy unbiased estimator here; its own bias test is
# then not informative, and tests/test_importance_weighted.py checks it against quadrature).
# On the VAE (8 images, B·K decoder calls per estimate) the reference has a fixed 65536
# estimates per K, shared by the four estimators: sized to each run, the references of the
# least noisy ones took over ten minutes per K beyond K = 16 on this machine.
set -euo pipefail
out="${1:-results}"
shift || true
wanted="${*:-linear-gaussian discrete vae-gaussian}"
export OMP_NUM_THREADS=1

figure() {
    local name="$1"
    shift
    [[ " $wanted " == *" $name "* ]] || return 0
    local stem="$out/iwae-k-$name"
    gradbench sweep "$@" --dtype float64 --seed 0 \
        --csv "$stem.csv" --detail-csv "$stem-detail.csv" --overwrite
    # one variance panel per coordinate where there are few, the total variance otherwise
    local coordinates
    coordinates=$(python -c "import pandas as p; d = p.read_csv('$stem-detail.csv'); print(d.param.nunique())")
    if ((coordinates <= 6)); then
        gradbench plot "$stem.csv" --detail "$stem-detail.csv" --out "$stem.png" --overwrite
    else
        gradbench plot "$stem.csv" --out "$stem.png" --overwrite
    fi
    # per coordinate where there are few; the total and the median over coordinates otherwise
    local summary=()
    ((coordinates <= 16)) || summary=(--summary)
    python benchmarks/snr_table.py "$stem-detail.csv" --x param_particles "${summary[@]}" \
        > "$stem-snr.md"
    rm -rf "$stem.csv.parts"  # the sweep's journal of finished tasks, for --resume only
}

figure linear-gaussian iwae-linear-gaussian --param-scan particles=1:256:9:log \
    -e reparam -e dreg -e stl -e vimco -e reinforce -n 20000 --reference-estimator dreg
figure discrete iwae-discrete --param-scan particles=1:256:9:log \
    -e vimco -e rloo -e reinforce -n 20000 --reference-estimator vimco
figure vae-gaussian iwae-vae-gaussian --param-scan particles=1:32:6:log \
    -e reparam -e dreg -e stl -e vimco -n 2000 --reference-estimator dreg \
    --reference-samples 65536
