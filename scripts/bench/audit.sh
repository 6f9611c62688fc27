#!/usr/bin/env bash
# The audit's near-duplicate search against imagededup's PHash (issue #34, point 5) on the same
# images: the committed sample's Animal-MNIST training file (the outlier pool, 10,000 images)
# against MNIST's test file (1,000), hash distance ≤ 10 and no pixel check (near_correlation -1),
# so both judge by the hash alone. oodlab's hashes are imagededup's bit for bit
# (crates/audit/tests/imagededup.rs), so the pairs must be the same: the script fails otherwise.
# Prints each side's seconds (oodlab: the whole `oodlab audit`, loading included; imagededup:
# encoding and find_duplicates, the files already read), the pairs found by both, by one only,
# and `ratio imagededup/oodlab = X` (above 1: oodlab is faster).
#   bash scripts/bench/audit.sh
#   TINY=1 bash scripts/bench/audit.sh   # oodlab's side only, unless imagededup imports (CI)
# imagededup needs PyTorch at import: IDD_PYTHON names a Python that has imagededup and torch
# (default .venv-audit, made with imagededup --no-deps and its light dependencies; its import then
# needs torch, which the script does not install).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
bin=${OODLAB:-target/release/oodlab}
[ -x "$bin" ] || cargo build -q --release -p oodlab-cli
s=$here/datasets/sample
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/bench.yaml" <<YAML
name: audit-bench
datasets:
  fashion:
    format: idx
    classes: 10
    train: {images: $s/fashion-mnist/train-images-idx3-ubyte.gz, labels: $s/fashion-mnist/train-labels-idx1-ubyte.gz}
    test: {images: $s/fashion-mnist/t10k-images-idx3-ubyte.gz, labels: $s/fashion-mnist/t10k-labels-idx1-ubyte.gz}
  mnist:
    format: idx
    classes: 10
    test: {images: $s/mnist/t10k-images-idx3-ubyte.gz, labels: $s/mnist/t10k-labels-idx1-ubyte.gz}
  animal:
    format: idx
    classes: 10
    train: {images: $s/animal-mnist/train-images-idx3-ubyte.gz, labels: $s/animal-mnist/train-labels-idx1-ubyte.gz}
  # The same file under another name as the validation OOD set: the pool is then audited whole.
  animal-val:
    format: idx
    classes: 10
    train: {images: $s/animal-mnist/train-images-idx3-ubyte.gz, labels: $s/animal-mnist/train-labels-idx1-ubyte.gz}
data: {id: fashion, splits: [{classes: [0, 1, 3, 5, 8, 9]}], outliers: animal, ood: [mnist]}
eval: {val_ood: animal-val}
audit: {near_distance: 10, near_correlation: -1, roles: [outliers, mnist], show: 1000000}
methods:
  oe: {method: oe}
YAML
echo "== $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
start=$(date +%s.%N)
"$bin" audit "$dir/bench.yaml" --format json > "$dir/oodlab.json"
end=$(date +%s.%N)
py=${IDD_PYTHON:-$here/.venv-audit/bin/python}
if [ ! -x "$py" ] && [ -z "${TINY:-}" ]; then
  python3 -m venv "$here/.venv-audit"
  "$here/.venv-audit/bin/pip" install -q imagededup --no-deps
  "$here/.venv-audit/bin/pip" install -q numpy scipy Pillow PyWavelets tqdm scikit-learn matplotlib
fi
if ! "$py" -c "from imagededup.methods import PHash" 2>/dev/null; then
  python3 - "$dir/oodlab.json" "$start" "$end" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
cross = sum(c["exact_pairs"] + c["near_pairs"] for c in v["splits"][0]["cells"] if c["a"] != c["b"])
print(f"oodlab: {float(sys.argv[3]) - float(sys.argv[2]):.2f} s, {cross} cross pairs within 10 bits")
print("imagededup does not import here (it needs PyTorch): oodlab's side only; IDD_PYTHON=... for the comparison")
PY
  exit 0
fi
"$py" scripts/bench/audit_imagededup.py "$s/animal-mnist/train-images-idx3-ubyte.gz" "$s/mnist/t10k-images-idx3-ubyte.gz" 10 > "$dir/imagededup.json"
python3 - "$dir/oodlab.json" "$dir/imagededup.json" "$start" "$end" <<'PY'
import json, sys
ours, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
seconds = float(sys.argv[4]) - float(sys.argv[3])
split = ours["splits"][0]
# The pool's positions are its file's indices (the whole file); MNIST's likewise.
mine = {(p["a_position"], p["b_position"]) for p in split["closest"] if p["a_role"] == "outliers" and p["b_role"] == "mnist"}
cell = next(c for c in split["cells"] if c["a"] == "outliers" and c["b"] == "mnist")
assert len(mine) == cell["exact_pairs"] + cell["near_pairs"], "every pair listed"
theirs = {tuple(p) for p in ref["pairs"]}
print(f"images: {ref['images'][0]} x {ref['images'][1]}")
print(f"oodlab: {seconds:.2f} s (the whole command), imagededup: {ref['seconds']:.2f} s (encoding + find_duplicates)")
print(f"pairs within 10 bits: both {len(mine & theirs)}, oodlab only {len(mine - theirs)}, imagededup only {len(theirs - mine)}")
if mine != theirs:
    sys.exit("error: the pairs differ")
print(f"ratio imagededup/oodlab = {ref['seconds'] / seconds:.2f}")
PY
