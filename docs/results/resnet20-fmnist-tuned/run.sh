#!/usr/bin/env bash
# Tuned baselines on ResNet-20 with training-mode probes (issue 23): each optimizer's rate (η, η_base; α for L4)
# over 0.1, 0.3, 1, 3 and 10 × its default, one seed and 130 steps per point, chosen on the final validation loss;
# then 3 seeds × 390 steps (5 epochs of 10,000 images) at the chosen rate; validation on the last 2,000 training
# images. Baselines run without the light sharpness probe (--light-probe-iters 0).
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task resnet20-fmnist --preset tuned --optimizers caeo,sgd,momentum,adamw,l4 --seeds 3 --steps 390 \
  --tune-steps 130 --val 2000 --eval-every 78 --light-probe-iters 0 ${EXTRA:-} --out docs/results/resnet20-fmnist-tuned --resume
