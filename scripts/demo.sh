#!/usr/bin/env bash
# Quick-start demo (1): set up .venv, train the Renyi-GAN paper's MNIST DCGAN with the Renyi
# generator loss (alpha = 3) on the embedded MNIST, and print where the sample grid is.
# The paper's DCGAN at half width (--cbase=32) and batch 32 (more steps per minute), 100 kimg
# (~3100 steps). Budget on an idle 2-core CPU: pip install ~70 s, dataset build ~15 s, training
# ~7 min (about 4 s per kimg on 2 threads); other jobs on the machine slow it down.
# Usage: bash scripts/demo.sh [extra train.py options, e.g. --kimg=200 for better digits]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup_env.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
.venv/bin/python train.py --loss=renyi --alpha=3 --batch=32 --cbase=32 --kimg=100 --tick=2 --snap=25 --outdir=training-runs "$@" | tee "$log"
grid=$(sed -n 's/^Latest sample grid: //p' "$log" | tail -n 1)
echo
echo "Demo finished in $(( $(date +%s) - start )) s. Sample grid of G after training: $grid"
