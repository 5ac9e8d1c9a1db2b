#!/usr/bin/env bash
# DCAO's relative mode (α = β = c = 0.5 against running means of the probes) and Hi-DLR (one group per residual
# block) against Adam on ResNet-20 with training-mode probes (issue 23): 5 epochs of 10,000 images (390 steps of
# 128), 3 seeds, validation on the last 2,000 training images, the settings of ../resnet20-fmnist-dcao-train (whose
# Adam runs these repeat). Replaces the relative-mode and Hi-DLR rows of ../resnet20-fmnist-dcao, whose probes took
# the evaluation-mode Hessian. Adam runs without the light sharpness probe (--light-probe-iters 0).
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task resnet20-fmnist --optimizers "dcao:mode=relative:alpha=0.5:beta=0.5:c=0.5,hidlr-block,adam" --seeds 3 --steps 390 \
  --val 2000 --eval-every 78 --light-probe-iters 0 ${EXTRA:-} --out docs/results/resnet20-fmnist-dcao-relative-hidlr-train --resume
