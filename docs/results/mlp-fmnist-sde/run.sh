#!/usr/bin/env bash
# The SDE test on the MLP: SGD, SVAG l = 2, 4, 8 and Gaussian SGD from one start per seed, at a small and a large
# rate, 3 seeds each. A rate whose sde.png is there is skipped, so a rerun resumes. LAB overrides the program (default ./lab).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
out=docs/results/mlp-fmnist-sde
for lr in 0.1 0.4; do
  dir=$out/lr$lr
  if [[ -f $dir/sde.png ]]; then echo "skip $dir"; continue; fi
  "$LAB" sde --train 2000 --batch 32 --steps 2000 --eval-every 100 --lr $lr --ls 1,2,4,8 --seeds 3 --seed 0 --out "$dir"
done
