#!/usr/bin/env bash
# CAEO's estimator ablation (power iteration, Hutchinson, K-FAC, the batch sharpness) on ResNet-20 with
# training-mode probes (issue 23): 5 epochs of 10,000 images (390 steps of 128), 3 seeds, validation on the last
# 2,000 training images, the settings of ../resnet20-fmnist-round2. Replaces ../resnet20-fmnist-caeo-estimator,
# whose probes took the evaluation-mode Hessian.
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" sweep --preset caeo-estimator --task resnet20-fmnist --seeds 3 --steps 390 --val 2000 --eval-every 78 \
  ${EXTRA:-} --out docs/results/resnet20-fmnist-caeo-estimator-train --resume
