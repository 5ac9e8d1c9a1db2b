#!/usr/bin/env bash
# Installs the same-run PyTorch baseline's one dependency: Debian's python3-torch (1.13, CPU), and OpenBLAS's
# pthread build that perf/Bench times SGEMM against. A baseline for perf/ only; the engine never needs either.
set -euo pipefail
packages=(python3-torch libopenblas0-pthread)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "already installed: ${packages[*]}"; exit 0; fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
/usr/bin/python3 -c "import torch; print('torch', torch.__version__)"
