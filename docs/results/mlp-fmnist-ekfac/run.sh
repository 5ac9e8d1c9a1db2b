#!/usr/bin/env bash
# EKFAC beside K-FAC (issue 29): both at rates tuned on the validation loss (--preset tuned: the default rate × 0.1,
# 0.3, 1, 3, 10 for a third of the steps, one seed), then 3 seeds at the chosen rate. --resume continues an
# interrupted round. LAB overrides the program (default ./lab); EXTRA adds options (e.g. --threads 1).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task mlp-fmnist --preset tuned --optimizers ekfac,kfac --seeds 3 --steps 1000 \
  ${EXTRA:-} --out docs/results/mlp-fmnist-ekfac --resume
