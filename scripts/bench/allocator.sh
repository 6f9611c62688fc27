#!/usr/bin/env bash
# One training epoch of the reference network (conv 32-64-128, batch 128, 1,280 Fashion-MNIST
# sample images, 1 thread) with the `oodlab` binary built with mimalloc (the default) and with the
# system allocator (feature `system-allocator`), alternating, REPEATS times each. Prints the epoch
# seconds of each run, images/s, and `ratio system/mimalloc = X` (epoch time, best of each).
#   bash scripts/bench/allocator.sh
#   TINY=1 bash scripts/bench/allocator.sh    # 128 images, one repetition: seconds after the builds (CI)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${TINY:-}" ]; then repeats=${REPEATS:-1} images=128; else repeats=${REPEATS:-3} images=1280; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here"
cargo build -q --release -p oodlab-cli --features system-allocator && cp target/release/oodlab "$tmp/oodlab-system"
cargo build -q --release -p oodlab-cli && cp target/release/oodlab "$tmp/oodlab-mimalloc"
s="$here/datasets/sample/fashion-mnist"
cat > "$tmp/speed.yaml" <<YAML
name: speed
datasets:
  fashion: {format: idx, classes: 10, train: {images: $s/train-images-idx3-ubyte.gz, labels: $s/train-labels-idx1-ubyte.gz}, test: {images: $s/t10k-images-idx3-ubyte.gz, labels: $s/t10k-labels-idx1-ubyte.gz}}
data: {id: fashion, splits: [{classes: [0, 1, 3, 5, 8, 9]}], train_limit: $images, val_fraction: 0.0}
model: {channels: [32, 64, 128]}
train: {epochs: 1, batch_size: 128}
methods:
  baseline: {method: ce}
YAML
declare -A best=([system]=1e9 [mimalloc]=1e9)
for i in $(seq "$repeats"); do
  for kind in system mimalloc; do
    rm -rf "$tmp/home"
    "$tmp/oodlab-$kind" --home "$tmp/home" run "$tmp/speed.yaml" --threads 1 --jobs 1 >/dev/null 2>&1
    sec=$(grep -h '"event":"epoch"' "$tmp"/home/runs/speed/*/events.jsonl | sed 's/.*"seconds":\([0-9.]*\).*/\1/')
    echo "$kind run $i: epoch $sec s, $(python3 -c "print(round($images / $sec))") images/s"
    best[$kind]=$(python3 -c "print(min($sec, ${best[$kind]}))")
  done
done
python3 -c "print(f'ratio system/mimalloc = {${best[system]} / ${best[mimalloc]}:.2f}')"
