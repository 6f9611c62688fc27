#!/usr/bin/env bash
# Speed of oodlab's OOD metrics against the references (scikit-learn as OpenOOD calls it, MixOE's
# TNR@95 sweep) on the same N seeded scores (default 1,000,000), in one run. Installs
# scikit-learn into a virtualenv (.venv-bench) if it is missing. Prints both lines, fails unless
# the five metric values agree to 1e-9, and prints `ratio sklearn/oodlab = X` (how many times
# faster oodlab is).
#   bash scripts/bench/metrics.sh
#   TINY=1 bash scripts/bench/metrics.sh       # 2,000 scores, one repeat: seconds (CI)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${BENCH_VENV:-$here/.venv-bench}
if [ -n "${TINY:-}" ]; then n=${N:-2000} repeats=${REPEATS:-1}; else n=${N:-1000000} repeats=${REPEATS:-5}; fi
if ! "$venv/bin/python" -c "import sklearn" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q scikit-learn numpy
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build -q --release -p oodlab-metrics --example bench_metrics --manifest-path "$here/Cargo.toml"
echo "== $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
sk=$("$venv/bin/python" "$here/scripts/bench/metrics_sklearn.py" "$tmp" "$repeats" "$n")
ours=$("$here/target/release/examples/bench_metrics" "$tmp/id.bin" "$tmp/ood.bin" "$repeats")
echo "$sk"
echo "$ours"
python3 - "$sk" "$ours" <<'PY'
import sys
sk, ours = ({k: float(v) for k, v in (f.split("=") for f in line.split()[1:])} for line in sys.argv[1:])
for k in ("n", "auroc", "fpr95", "aupr_in", "aupr_out", "tnr95"):
    assert abs(sk[k] - ours[k]) <= 1e-9, f"{k}: the reference says {sk[k]}, oodlab {ours[k]}"
print(f"ratio sklearn/oodlab = {sk['best_seconds'] / ours['best_seconds']:.2f}")
PY
