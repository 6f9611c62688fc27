#!/usr/bin/env bash
# Speed of oodlab's OOD metrics against scikit-learn on the same 1,000,000 scores, in one run.
# Installs scikit-learn into a virtualenv (.venv-bench) if it is missing. Prints both lines (the
# metric values must agree) and `ratio sklearn/oodlab = X` (how many times faster oodlab is).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${BENCH_VENV:-$here/.venv-bench}
repeats=${REPEATS:-5}
if ! "$venv/bin/python" -c "import sklearn" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q scikit-learn numpy
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build -q --release -p oodlab-metrics --example bench_metrics --manifest-path "$here/Cargo.toml"
sk=$("$venv/bin/python" "$here/scripts/bench/metrics_sklearn.py" "$tmp" "$repeats")
ours=$("$here/target/release/examples/bench_metrics" "$tmp/id.bin" "$tmp/ood.bin" "$repeats")
echo "$sk"
echo "$ours"
t_sk=${sk##*best_seconds=}
t_ours=${ours##*best_seconds=}
python3 -c "print(f'ratio sklearn/oodlab = {$t_sk / $t_ours:.2f}')"
