#!/usr/bin/env bash
# EKFAC's amortization (issue 29): the eigenbases every refresh against every 5th refresh (scales every T = 10 steps
# either way), at the rate tuned in ../mlp-fmnist-ekfac, 3 seeds. --resume continues an interrupted round.
# LAB overrides the program (default ./lab); EXTRA adds options (e.g. --threads 1).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
"$LAB" compare --task mlp-fmnist --optimizers "ekfac:lr=0.003,ekfac:lr=0.003:basis_every=5" --seeds 3 --steps 1000 \
  ${EXTRA:-} --out docs/results/mlp-fmnist-ekfac-amortized --resume
