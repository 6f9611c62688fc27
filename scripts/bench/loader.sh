#!/usr/bin/env bash
# The data loader alone, and a run, over image folders larger than the loader's queue:
#   1. writes folders of SMALL and LARGE JPEG files (256x256 RGB windows of the committed
#      scikit-image photos, 4 classes; the photo_folder example of the data crate), once;
#   2. `oodlab bench-load` over one epoch of the LARGE folder decoded to 224x224 (random crop
#      200, flip, jitter, ImageNet normalization, batch 32) with 0, 1 and 2 loader workers,
#      streamed from the files (cache_mb 0), and cached (decoded once, kept in memory): images/s
#      and the process's peak RSS;
#   3. the same streamed and cached over the SMALL folder: streamed memory does not grow with the
#      dataset, cached memory does;
#   4. a real run (`oodlab run`: the CNN, 1 epoch, images decoded to 64x64) streamed over the LARGE
#      folder, and its peak RSS from the store.
# Prints one line per measurement. Figures in docs/performance.md.
#   bash scripts/bench/loader.sh
#   TINY=1 bash scripts/bench/loader.sh       # 60 and 120 images, in a folder of their own: seconds (CI)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${TINY:-}" ]; then small=${SMALL:-60} large=${LARGE:-120}; else small=${SMALL:-1000} large=${LARGE:-4000}; fi
cd "$here"
cargo build -q --release -p oodlab-cli
work=target/bench-loader${TINY:+-tiny}
mkdir -p "$work"
for n in "$small" "$large"; do
  [ -d "$work/photos-$n" ] || cargo run -q --release -p oodlab-data --example photo_folder -- "$work/photos-$n" "$n" 256
done

spec() { # folder size extra-train-settings
  cat <<YAML
name: bench-loader
datasets:
  photos:
    format: folder
    classes: 4
    train: {dir: photos-$1}
    test: {dir: photos-$1}
    image: {size: [$2, $2], channels: 3}
data:
  id: photos
  splits: [{classes: [0, 1, 2]}]
  normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
  val_fraction: 0.0
model: {arch: cnn, channels: [8, 16, 32]}
train: {epochs: 1, batch_size: 32$3}
eval: {batch_size: 64}
methods:
  baseline: {method: ce}
YAML
}
augment=", augment: {hflip: true, crop: {size: [200, 200], padding: 0}, jitter: {brightness: 0.4, contrast: 0.4, saturation: 0.4}}"
spec "$large" 224 "$augment" > "$work/large.yaml"
spec "$small" 224 "$augment" > "$work/small.yaml"
bench() { # spec workers cache_mb
  echo "$(basename "$1" .yaml): $(target/release/oodlab bench-load "$1" --set data.loader.workers="$2" --set data.loader.cache_mb="$3")"
}
for w in 0 1 2; do bench "$work/large.yaml" "$w" 0; done
bench "$work/large.yaml" 2 4096
bench "$work/small.yaml" 2 0
bench "$work/small.yaml" 2 4096

spec "$large" 64 "" > "$work/run.yaml"
rm -rf "$work/home"
target/release/oodlab --home "$work/home" run "$work/run.yaml" --set data.loader.cache_mb=0 --set data.loader.workers=1 > "$work/run.log" 2>&1
rss=$(sqlite3 "$work/home/oodlab.db" "select printf('%.0f', value) from run_metrics where name = 'peak_rss_mb'")
secs=$(sqlite3 "$work/home/oodlab.db" "select printf('%.1f', sum(seconds)) from epochs")
echo "run over $large streamed images (64x64, CNN, 1 epoch of training in $secs s, then evaluation): peak RSS $rss MiB"
