#!/usr/bin/env bash
# One training step (forward, cross-entropy, backward, SGD with momentum and weight decay) on
# random 1x28x28 inputs, batch 128, in oodlab (`oodlab bench-step`) and in PyTorch
# (scripts/bench/torch_reference.py), alternating, REPEATS times each after warm-up steps:
#   - the reference network of DESIGN.md (conv 32-64-128 with batch-norm and max-pool),
#   - the quickstart's network (16-32-64).
# Both use all cores (THREADS to change). PyTorch comes from PyPI into .venv-bench if missing
# (a large download the first time). Prints images/s and peak memory of each run, the best of
# each, and last `ratio oodlab/pytorch = X` for the reference network: the median over the
# repetitions of oodlab's images/s over PyTorch's in the run right after it (this machine's speed
# drifts by ±20% from minute to minute; a pair run back to back sees the same machine).
#   bash scripts/bench/train-step.sh
#   TINY=1 bash scripts/bench/train-step.sh   # batch 8, one step, one repetition: seconds (CI). It
#                                             # installs no PyTorch (5.6 GB from PyPI): without it
#                                             # in BENCH_VENV the PyTorch side is only compiled.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${TINY:-}" ]; then repeats=${REPEATS:-1} steps=${STEPS:-1} batch=${BATCH:-8} warmup=1; else repeats=${REPEATS:-5} steps=${STEPS:-20} batch=${BATCH:-128} warmup=3; fi
threads=${THREADS:-$(nproc)}
venv=${BENCH_VENV:-$here/.venv-bench}
cd "$here"
torch=yes
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "${TINY:-}" ]; then
    torch=
    python3 -m py_compile scripts/bench/torch_reference.py
    echo "PyTorch is not in $venv: its side is left out (set BENCH_VENV to a virtualenv with torch)"
  else
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.15.0 numpy
  fi
fi
cargo build -q --release -p oodlab-cli
export RAYON_NUM_THREADS=$threads

declare -A best last
ratios=()
run() { # who network channels
  local line
  if [ "$1" = oodlab ]; then
    line=$(target/release/oodlab bench-step --channels "$3" --batch "$batch" --image 1x28x28 --warmup "$warmup" --steps "$steps")
  else
    line=$("$venv/bin/python" scripts/bench/torch_reference.py --channels "$3" --batch "$batch" --image 1x28x28 --warmup "$warmup" --steps "$steps" --threads "$threads")
  fi
  echo "$2: $line"
  local ips
  ips=$(echo "$line" | sed 's/.*: \([0-9.]*\) images\/s.*/\1/')
  local key="$1 $2"
  last[$key]=$ips
  if [ -z "${best[$key]:-}" ] || awk "BEGIN{exit !($ips > ${best[$key]})}"; then
    best[$key]=$ips
  fi
}
for i in $(seq "$repeats"); do
  for net in "reference 32,64,128" "quickstart 16,32,64"; do
    set -- $net
    run oodlab "$1" "$2"
    [ -z "$torch" ] || run pytorch "$1" "$2"
  done
  [ -n "$torch" ] || continue
  ratios+=("$(awk "BEGIN{print ${last[oodlab reference]} / ${last[pytorch reference]}}")")
done
echo
if [ -z "$torch" ]; then
  echo "best: oodlab reference ${best[oodlab reference]} images/s, quickstart ${best[oodlab quickstart]} images/s"
  exit 0
fi
for net in quickstart reference; do
  echo "best $net: oodlab ${best[oodlab $net]} images/s, pytorch ${best[pytorch $net]} images/s"
done
echo "reference, oodlab/pytorch per pair: ${ratios[*]}; best over best: $(awk "BEGIN{printf \"%.2f\", ${best[oodlab reference]} / ${best[pytorch reference]}}")"
printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "ratio oodlab/pytorch = %.2f\n", m}'
