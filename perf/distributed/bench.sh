#!/usr/bin/env bash
# Data-parallel cost on this machine: for each task, R interleaved rounds of
#   (a) one process with 2 threads, and (b) 2 MPI ranks with 1 thread each (--distributed, each bound to a core),
# the same global batch and steps; prints the steady-state seconds per step (from steps.csv's clock, the first
# quarter of the steps left out as warm-up: the JIT compiles in every process), the ratio (b)/(a), and rank 0's
# all-reduce cost per step (bytes, and ms waiting for the slower rank included, over the whole run) as a markdown table.
#   perf/distributed/bench.sh [ROUNDS] [MLP_STEPS] [RESNET_STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; mlp_steps=${2:-1200}; resnet_steps=${3:-60}
command -v mpirun >/dev/null || { echo "bench.sh: mpirun is missing (apt-get install openmpi-bin, or run scripts/mpirun.sh once)" >&2; exit 1; }
dotnet build Lab -c Release -v quiet -nologo >&2
lab=Lab/bin/Release/net10.0/Lab
out=$(mktemp -d)
mpi=(--allow-run-as-root --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo -np 2)
echo "| task | batch | round | 1 rank × 2 threads, s/step | 2 ranks × 1 thread, s/step | ratio (2 ranks / 1 rank) | all-reduce kB/step | all-reduce ms/step |"
echo "|---|---|---|---|---|---|---|---|"
for task in mlp resnet20; do
  steps=$([ "$task" = mlp ] && echo "$mlp_steps" || echo "$resnet_steps")
  extra=(--model "$task" --train 2048 --batch 128 --steps "$steps" --eval-every 1000000 --checkpoint-every 1000000 --schedule constant)
  for r in $(seq 1 "$rounds"); do
    rm -rf "$out/a" "$out/b"
    "$lab" train "${extra[@]}" --threads 2 --out "$out/a" > "$out/a.log" 2>&1
    mpirun "${mpi[@]}" "$lab" train "${extra[@]}" --threads 1 --distributed --out "$out/b" > "$out/b.log" 2>&1
    python3 - "$out" "$task" "$r" "$steps" <<'PY'
import json, sys
out, task, r, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def steady(d):
    rows = [l.split(",") for l in open(f"{out}/{d}/steps.csv").read().split("\n")[1:] if l]
    w = len(rows) // 4
    return (float(rows[-1][-1]) - float(rows[w][-1])) / (len(rows) - 1 - w)
a = json.load(open(f"{out}/a/summary.json")); b = json.load(open(f"{out}/b/summary.json"))
sa, sb = steady("a"), steady("b")
c = b["collectives"]
print(f"| {task} | {a['batch']} | {r} | {sa:.4f} | {sb:.4f} | {sb / sa:.2f} | {c['bytes'] / steps / 1e3:.0f} | {1e3 * c['seconds'] / steps:.2f} |")
PY
  done
done
echo
echo "OpenMPI: $(mpirun --version | head -1); cores: $(nproc); commit $(git rev-parse --short HEAD)"
rm -rf "$out"
