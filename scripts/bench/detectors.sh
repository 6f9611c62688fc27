#!/usr/bin/env bash
# The post-hoc detectors (crates/detectors) against the reference libraries on the same seeded
# features: KNN over TRAIN x DIM training features against QUERIES queries (faiss's exact flat
# index when faiss-cpu installs, else NumPy), the Mahalanobis/RMDS fit and scoring (scikit-learn's
# EmpiricalCovariance + NumPy) and ViM's fit and scoring (OpenOOD's code). Prints each side's
# seconds, the largest score difference (relative to the largest score), and last, for each,
# `ratio reference/oodlab = X` (above 1: oodlab is faster). Both use all cores.
#   bash scripts/bench/detectors.sh                 # 50,000 x 512 against 20,000 queries
#   TRAIN=5000 QUERIES=2000 bash scripts/bench/detectors.sh
#   TINY=1 bash scripts/bench/detectors.sh    # 500 x 64 against 200 queries, ViM's 32, no faiss: seconds (CI)
#   ISA=avx2 bash scripts/bench/detectors.sh  # also oodlab built without gemm's AVX-512 kernels (the
#                                             # crate's default feature x86-v4 off), on the same features:
#                                             # a machine without AVX-512 (Zen 3) on this one. Which
#                                             # kernels the reference's OpenBLAS picks: OPENBLAS_VERBOSE=2
set -euo pipefail
if [ -n "${TINY:-}" ]; then : "${TRAIN:=500}" "${QUERIES:=200}" "${DIM:=64}" "${VIM_DIM:=32}"; fi
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${BENCH_VENV:-$here/.venv-bench}
cd "$here"
if ! "$venv/bin/python" -c "import numpy, scipy, sklearn" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy scipy scikit-learn
fi
[ -n "${TINY:-}" ] || "$venv/bin/python" -c "import faiss" 2>/dev/null || "$venv/bin/pip" install -q faiss-cpu || echo "faiss-cpu did not install: KNN's reference is NumPy"
cargo build -q --release --workspace --examples
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
ref=$("$venv/bin/python" scripts/bench/detectors_reference.py "$dir" --train "${TRAIN:-50000}" --queries "${QUERIES:-20000}" --dim "${DIM:-512}" --vim-dim "${VIM_DIM:-256}")
echo "reference: $ref"
ours=$(target/release/examples/bench_detectors "$dir")
echo "oodlab:    $ours"
avx2=null
if [ "${ISA:-}" = avx2 ]; then
  # Its own target folder: the default build's artifacts stay as they are.
  cargo build -q --release -p oodlab-detectors --example bench_detectors --no-default-features --target-dir target/avx2
  avx2=$(target/avx2/release/examples/bench_detectors "$dir")
  echo "oodlab, AVX2 kernels only: $avx2"
fi
python3 - "$ref" "$ours" "$avx2" <<'PY'
import json, sys
ref, ours, avx2 = (json.loads(a) for a in sys.argv[1:4])
sides = [("oodlab", ours)] + ([("oodlab AVX2 only", avx2)] if avx2 else [])
for name in ("knn", "mahalanobis+rmds", "vim"):
    r = ref["times"][name]
    print(f"{name}: reference {r:.2f} s, " + ", ".join(f"{label} {side['times'][name]:.2f} s" for label, side in sides))
for label, side in sides:
    for name, d in side["difference"].items():
        print(f"{name}: largest difference {d:.1e} of the largest score ({label})")
for label, side in sides:
    suffix = "" if label == "oodlab" else " (AVX2 only)"
    for name in ("knn", "mahalanobis+rmds", "vim"):
        print(f"{name}: ratio reference/oodlab = {ref['times'][name] / side['times'][name]:.2f}{suffix}")
PY
