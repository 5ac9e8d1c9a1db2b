#!/usr/bin/env bash
# Task transfer on ResNet-20 (issue 23): pretrain on Fashion-MNIST classes 0–4 with CAEO and with momentum, then
# fine-tune each pretrained network on classes 5–9 (a fresh head) with every optimizer; 200 steps of 128 per stage,
# 3 seeds, validation on the last 2,000 training images of the stage's classes, training-mode probes. Baselines run
# without the light sharpness probe (--light-probe-iters 0).
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task resnet20-fmnist --preset transfer --optimizers caeo,sgd,momentum,adamw,l4 --pretrain caeo,momentum \
  --seeds 3 --steps 200 --val 2000 --eval-every 50 --light-probe-iters 0 ${EXTRA:-} --out docs/results/resnet20-fmnist-transfer --resume
