#!/usr/bin/env bash
# The Edge of Stability on ResNet-20: full batch of the first 128 Fashion-MNIST images, training-mode BatchNorm,
# MSE loss, GD at η 0.02 and 0.05 on seeds 0, 1, 2 (seed 0 in one folder, seeds 1 and 2 one folder per rate); then
# heavy-ball momentum (μ 0.9; edge 3.8/η) at η 0.02 and 0.04 and Adam (edge 38/η on λmax(P⁻¹H)) at η 0.001 and 0.002,
# one folder per optimizer, rate and seed. A run whose eos.png is there is skipped, so a rerun resumes. LAB overrides
# the program (default ./lab); EXTRA adds options to every run (e.g. --threads 1).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
out=docs/results/resnet20-fmnist-eos
run() {
  local dir=$1; shift
  if [[ -f $out/$dir/eos.png ]]; then echo "skip $dir"; return; fi
  "$LAB" eos --model resnet20 --n 128 --steps 400 --probe-every 20 --lanczos-iters 20 ${EXTRA:-} "$@" --out "$out/$dir"
}
run gd-seed0 --optimizer gd --lrs 0.02,0.05 --seed 0
for seed in 1 2; do
  run gd-lr0.05-seed$seed --optimizer gd --lrs 0.05 --seed $seed
  run gd-lr0.02-seed$seed --optimizer gd --lrs 0.02 --seed $seed
done
for seed in 0 1 2; do
  for lr in 0.02 0.04; do run momentum-lr$lr-seed$seed --optimizer momentum --lrs $lr --seed $seed; done
  for lr in 0.001 0.002; do run adam-lr$lr-seed$seed --optimizer adam --lrs $lr --seed $seed; done
done
