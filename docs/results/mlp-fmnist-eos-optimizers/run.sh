#!/usr/bin/env bash
# The Edge-of-Stability round for GD, heavy-ball momentum and Adam on the MLP (3 seeds), and the gradient flow
# beside GD at eta 0.12. Each run writes its own folder; one whose summary.json is there is skipped, so a rerun
# resumes. LAB overrides the program (default: ./lab from the repository root).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAB=${LAB:-./lab}
out=docs/results/mlp-fmnist-eos-optimizers
common=(--n 2000 --steps 1000 --probe-every 20 --lanczos-iters 20)
run() {
  local dir=$1; shift
  if [[ -f $out/$dir/summary.json && -f $out/$dir/eos.png ]]; then echo "skip $dir"; return; fi
  "$LAB" eos "${common[@]}" "$@" --out "$out/$dir"
}
for seed in 0 1 2; do
  run gd-seed$seed       --optimizer gd       --lrs 0.08,0.12,0.16 --seed $seed
  run momentum-seed$seed --optimizer momentum --lrs 0.04,0.06,0.08 --seed $seed
  run adam-seed$seed     --optimizer adam     --lrs 0.001,0.002,0.004 --seed $seed
done
for seed in 0 1 2; do
  run flow-seed$seed --optimizer gd --lrs 0.12 --flow --seed $seed
done
