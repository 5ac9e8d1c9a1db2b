#!/usr/bin/env bash
# DCAO on ResNet-20 with training-mode probes (issue 23): the seed's absolute rule (α = β = c = 0.005) and the
# relative one (α = β = c = 0.5, against running means) against Adam and Hi-DLR, 5 epochs of 10,000 images (390 steps
# of 128), 3 seeds, validation on the last 2,000 training images, the settings of ../resnet20-fmnist-round2.
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task resnet20-fmnist --optimizers "dcao,dcao:mode=relative:alpha=0.5:beta=0.5:c=0.5,adam,hidlr" --seeds 3 --steps 390 \
  --val 2000 --eval-every 78 ${EXTRA:-} --out docs/results/resnet20-fmnist-dcao-train --resume
