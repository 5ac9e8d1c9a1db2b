#!/usr/bin/env bash
# Tuned baselines on the CPU-sized GPT (issue 23): the settings of ../gpt-shakespeare-caeo (2 layers, d 64, 2 heads,
# context 64, batch 16, 500 steps, validation on 320 fixed windows of the validation split); each optimizer's rate
# (η, η_base; α for L4) over 0.1, 0.3, 1, 3 and 10 × its default, one seed and 167 steps per point (a third),
# chosen on the final validation loss; then 3 seeds at the chosen rate.
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task gpt-shakespeare --layers 2 --width 64 --heads 2 --context 64 --batch 16 --eval-every 100 \
  --eval-batches 20 --seeds 3 --probe-batch 8 --steps 500 --preset tuned --optimizers caeo-adam,caeo,adamw,momentum,l4 \
  ${EXTRA:-} --out docs/results/gpt-shakespeare-tuned --resume
