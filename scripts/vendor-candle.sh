#!/usr/bin/env bash
# Recreates vendor/candle-core from the crates.io release plus vendor/candle-core.patch in a
# temporary folder and compares it with the committed copy (vendor/README.md). Exit 0: identical.
#   scripts/vendor-candle.sh            # compare
#   scripts/vendor-candle.sh --write    # replace vendor/candle-core with the recreated copy
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.11.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -sSfL "https://static.crates.io/crates/candle-core/candle-core-$version.crate" | tar xz -C "$tmp"
src=$tmp/candle-core-$version
rm -f "$src/Cargo.lock" "$src/.cargo_vcs_info.json" "$src/.cargo-ok"
patch -s -p1 -d "$src" < vendor/candle-core.patch
if [ "${1:-}" = --write ]; then
  rm -rf vendor/candle-core
  cp -a "$src" vendor/candle-core
  echo "vendor/candle-core recreated from candle-core $version and the patch"
else
  diff -r -x Cargo.lock "$src" vendor/candle-core && echo "vendor/candle-core = candle-core $version + vendor/candle-core.patch"
fi
