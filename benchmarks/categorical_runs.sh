#!/usr/bin/env bash
# The categorical reference results in results/ (docs/estimators.md), from the repository root:
#
#     bash benchmarks/categorical_runs.sh [OUT]        # OUT defaults to results
#
# 1. Every estimator on categorical-product at the (D, K) = (12, 3), (6, 10) and (3, 100)
#    settings of the IndeCateR paper's synthetic experiment (De Smet et al. 2023): variance,
#    bias, time, and the variance at equal evaluations (evals_variance = variance × evals).
#    Estimators that do not apply are listed as skipped.
# 2. The categorical VAE (L = 4 latents of K = 4 categories) trained with the categorical
#    estimators; the exact ELBO (enumeration of the 4^4 latent states) at every checkpoint,
#    and a basket of stateless estimators measured there (relax, stateful, would be warmed
#    up afresh at every checkpoint).
set -euo pipefail
out=${1:-results}
export PYTHONUNBUFFERED=1
# One thread: these runs are many small kernels, where waking a second thread costs more
# than it saves (logsigmoid of 16 values: 4 µs on one thread, 50–450 µs on two here).
export OMP_NUM_THREADS=1
columns=variance,bias_p,time_per_sample_s,evals_per_sample,evals_variance,work_variance

for setting in "12 3" "6 10" "3 100"; do
    read -r variables categories <<<"$setting"
    name="categorical-D$variables-K$categories"
    gradbench compare categorical-product --set variables="$variables" \
        --set categories="$categories" -n 20000 --seed 0 --columns "$columns" \
        --sort evals_variance --csv "$out/$name.csv" --markdown "$out/$name.md" \
        --plot "$out/$name.png" --overwrite
done

gradbench train vae-categorical -e reinforce -e rloo -e gumbel-softmax -e straight-through \
    -e gumbel-rao -e reinmax -e indecater -e unordered-set -e relax --steps 200 --batch 16 \
    --optimizer adam --lr 0.003 --eval-every 50 --seeds 2 -n 500 --basket rloo \
    --basket straight-through --basket indecater \
    --csv "$out/train-vae-categorical.csv" --basket-csv "$out/train-vae-categorical-basket.csv" \
    --plot "$out/train-vae-categorical.png" --overwrite
