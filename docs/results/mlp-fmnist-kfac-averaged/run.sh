#!/usr/bin/env bash
# K-FAC's two intervals (issue 29): factors every T = 10 steps, inverted at every refresh with no average against a
# running average (ξ 0.95) inverted every 5th refresh, at the rate tuned in ../mlp-fmnist-kfac, 3 seeds.
# --resume continues an interrupted round. LAB overrides the program (default ./lab); EXTRA adds options.
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task mlp-fmnist --optimizers "kfac:lr=0.03,kfac:lr=0.03:decay=0.95:inverse_every=5" --seeds 3 --steps 1000 \
  ${EXTRA:-} --out docs/results/mlp-fmnist-kfac-averaged --resume
