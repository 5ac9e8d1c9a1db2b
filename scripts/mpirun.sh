#!/usr/bin/env bash
# Runs a Lab verb data-parallel over N MPI ranks: scripts/mpirun.sh N VERB [OPTIONS...]
#   scripts/mpirun.sh 2 train --model mlp --steps 200 --out out/ddp
# Installs Debian's Open MPI when mpirun is missing, builds the Lab once (ranks must not build concurrently), and
# starts N ranks of it with --distributed added. On one machine (the default) messages stay on the loopback
# interface and shared memory, and a root user is allowed (containers, CI). For several machines, list them in a
# host file ("node1 slots=2" per line; the clone at the same path on each, the output folder shared) and run
#   HOSTFILE=hosts scripts/mpirun.sh 4 train ...
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/mpirun.sh N VERB [OPTIONS...]   (N ranks, e.g. scripts/mpirun.sh 2 train --model mlp --steps 200)" >&2
  exit 2
fi
ranks=$1; shift
if ! command -v mpirun >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "mpirun.sh: installing Debian's Open MPI (openmpi-bin)" >&2
    (apt-get update -qq && apt-get install -y -qq --no-install-recommends openmpi-bin) >&2
  elif command -v sudo >/dev/null 2>&1; then
    echo "mpirun.sh: installing Debian's Open MPI (openmpi-bin) with sudo" >&2
    (sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends openmpi-bin) >&2
  else
    echo "mpirun.sh: mpirun is missing; install it with: apt-get install openmpi-bin" >&2; exit 1
  fi
fi
dotnet build Lab -c Release -v quiet -nologo >&2
lab=Lab/bin/Release/net10.0/Lab
args=("$@")
[[ " ${args[*]} " == *" --distributed "* ]] || args+=(--distributed)
mpi=(--allow-run-as-root --oversubscribe -np "$ranks")
if [ -n "${HOSTFILE:-}" ]; then
  mpi+=(--hostfile "$HOSTFILE")
else
  mpi+=(--mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
fi
exec mpirun "${mpi[@]}" "$lab" "${args[@]}"
