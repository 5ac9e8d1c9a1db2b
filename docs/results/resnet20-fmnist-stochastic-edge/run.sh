#!/usr/bin/env bash
# The stochastic edge on ResNet-20: the first 256 Fashion-MNIST training images, training-mode BatchNorm, MSE loss,
# plain SGD with minibatches of 32 at η 0.05 and 0.1 (η 0.2 diverges within 6 steps from initialization, where
# λmax ≈ 82 > 2/η), 600 steps, every 50: λmax of the full-batch loss (Lanczos, 20 iterations, warm-started) and the
# batch sharpness over 10 minibatches, seeds 0, 1, 2 (one folder each). A seed whose eos.png is there is skipped, so a
# rerun resumes. LAB overrides the program (default ./lab); EXTRA adds options to every run (e.g. --threads 1).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
out=docs/results/resnet20-fmnist-stochastic-edge
for seed in 0 1 2; do
  if [[ -f $out/seed$seed/eos.png ]]; then echo "skip seed$seed"; continue; fi
  "$LAB" eos --model resnet20 --optimizer sgd --batch 32 --n 256 --lrs 0.05,0.1 --steps 600 --probe-every 50 \
    --lanczos-iters 20 --samples 10 --seed $seed ${EXTRA:-} --out "$out/seed$seed"
done
