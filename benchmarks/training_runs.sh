#!/usr/bin/env bash
# The reference training runs in results/ (docs/training.md), from the repository root:
#
#     bash benchmarks/training_runs.sh [OUT]        # OUT defaults to results
#
# 1. The survey's Bayesian logistic regression in miniature (Mohamed et al. 2020, §8):
#    bayes-logreg trained with the pathwise, score-function, optimal-baseline and
#    measure-valued estimators; ELBO by step and by second, the basket's variance along each.
# 2. A binary VAE in the DisARM setting (Dong, Mnih & Tucker 2020): vae-bernoulli trained
#    with reinforce, rloo, arm, disarm, gumbel-softmax and straight-through; the exact ELBO
#    (enumeration of the 2^8 latent states) at every checkpoint.
set -euo pipefail
out=${1:-results}
export PYTHONUNBUFFERED=1

gradbench train bayes-logreg -e reparam -e reinforce -e optimal-baseline -e mvd \
    --steps 200 --batch 16 --optimizer adam --lr 0.01 --eval-every 20 --seeds 3 -n 2000 \
    --csv "$out/train-logreg.csv" --basket-csv "$out/train-logreg-basket.csv" \
    --plot "$out/train-logreg.png" --overwrite

gradbench train vae-bernoulli -e reinforce -e rloo -e arm -e disarm -e gumbel-softmax \
    -e straight-through --steps 200 --batch 16 --optimizer adam --lr 0.003 --eval-every 40 \
    --seeds 2 -n 1000 \
    --csv "$out/train-vae-bernoulli.csv" --basket-csv "$out/train-vae-bernoulli-basket.csv" \
    --plot "$out/train-vae-bernoulli.png" --overwrite
