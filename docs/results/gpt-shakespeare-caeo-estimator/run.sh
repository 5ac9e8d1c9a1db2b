#!/usr/bin/env bash
# CAEO's estimator ablation on the CPU-sized GPT (issue 23): the settings of ../gpt-shakespeare-caeo (2 layers, d 64,
# 2 heads, context 64, batch 16, 500 steps, validation on 320 fixed windows of the validation split, probes of the
# training-mode loss on 8 training windows), 3 seeds.
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" sweep --preset caeo-estimator --task gpt-shakespeare --layers 2 --width 64 --heads 2 --context 64 --batch 16 --eval-every 100 --eval-batches 20 --seeds 3 --probe-batch 8 --steps 500 \
  ${EXTRA:-} --out docs/results/gpt-shakespeare-caeo-estimator --resume
