#!/usr/bin/env bash
# The Python side's tests (issue #37; docs/python.md): builds the wheel (scripts/build-wheel.sh),
# installs it into a fresh virtual environment with pytest and nothing else of this checkout,
# and runs python/tests there: the wheel's `oodlab` command runs the quickstart, and the
# `oodlab` module's frames are checked against the command's own CSV and JSON.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/build-wheel.sh" >/dev/null
wheel=$(ls "$here"/target/wheels/oodlab-*.whl)
env=$(mktemp -d)
trap 'rm -rf "$env"' EXIT
python3 -m venv "$env/venv"
# pytest, and the readers the exports are checked with (MLflow, TensorBoard).
"$env/venv/bin/pip" install -q "$wheel" pytest mlflow tensorboard
# From outside the checkout, so that `import oodlab` can only find the installed module.
cd "$env"
PATH="$env/venv/bin:$PATH" "$env/venv/bin/python" -m pytest -q -p no:cacheprovider "$here/python/tests" "$@"
