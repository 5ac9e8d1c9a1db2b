#!/usr/bin/env bash
# DCAO on ResNet-20 with training-mode probes (issue 23): the seed's absolute rule (α = β = c = 0.005) against Adam,
# 5 epochs of 10,000 images (390 steps of 128), 3 seeds, validation on the last 2,000 training images, the settings
# of ../resnet20-fmnist-round2. Adam runs without the light sharpness probe (--light-probe-iters 0), which would
# double its time; Hi-DLR and DCAO's relative mode did not fit this round's hour.
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task resnet20-fmnist --optimizers "dcao,adam" --seeds 3 --steps 390 --val 2000 --eval-every 78 \
  --light-probe-iters 0 ${EXTRA:-} --out docs/results/resnet20-fmnist-dcao-train --resume
