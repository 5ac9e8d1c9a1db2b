#!/usr/bin/env bash
# The Edge of Stability on ResNet-20: full batch of the first 128 Fashion-MNIST images, training-mode BatchNorm,
# MSE loss, GD at η 0.02 and 0.05 on seeds 0, 1, 2 (seed 0 in one folder, seeds 1 and 2 one folder per rate). A run whose
# eos.png is there is skipped, so a rerun resumes. LAB overrides the program (default ./lab).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
out=docs/results/resnet20-fmnist-eos
run() {
  local dir=$1; shift
  if [[ -f $out/$dir/eos.png ]]; then echo "skip $dir"; return; fi
  "$LAB" eos --model resnet20 --n 128 --steps 400 --probe-every 20 --lanczos-iters 20 --optimizer gd "$@" --out "$out/$dir"
}
run gd-seed0 --lrs 0.02,0.05 --seed 0
for seed in 1 2; do
  run gd-lr0.05-seed$seed --lrs 0.05 --seed $seed
  run gd-lr0.02-seed$seed --lrs 0.02 --seed $seed
done
