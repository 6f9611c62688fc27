#!/usr/bin/env bash
# Builds the `oodlab` wheel (issue #37; docs/python.md) into target/wheels/: the release binary
# as the wheel's `oodlab` script (maturin's binary packaging) and the `oodlab` Python module
# (python/oodlab) that reads a home's store into pandas. The wheel's platform tag is the oldest
# manylinux the binary's glibc symbols allow, as maturin's own check finds it.
#   bash scripts/build-wheel.sh            # the CPU build
#   CUDA=1 bash scripts/build-wheel.sh     # with the CUDA backend (needs the CUDA toolkit, as scripts/build-cuda.sh)
# maturin comes from PyPI into .venv-wheel (WHEEL_VENV to use another environment).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${WHEEL_VENV:-$here/.venv-wheel}
if ! "$venv/bin/maturin" --version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "maturin>=1.9,<2"
fi
args=(build --release --out "$here/target/wheels")
if [ -n "${CUDA:-}" ]; then
  args+=(--features cuda)
fi
cd "$here"
rm -f target/wheels/oodlab-*.whl
"$venv/bin/maturin" "${args[@]}"
ls target/wheels/oodlab-*.whl
