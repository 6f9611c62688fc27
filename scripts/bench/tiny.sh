#!/usr/bin/env bash
# Every benchmark of scripts/bench/ at its tiny size (TINY=1): seconds each, so that .ci/run runs
# them all and a change that breaks one fails CI. The figures they print are not judged; the
# agreement checks inside them are (metrics.sh's values against the references, store.sh's
# matches against MLflow's). The Python sides install into .venv-bench and .venv-mlflow (PyPI),
# except PyTorch (train-step.sh says so and compiles its side only).
#   bash scripts/bench/tiny.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export TINY=1
for bench in metrics detectors train-step dashboard loader store allocator tune tune-paper audit; do
  echo "== scripts/bench/$bench.sh (tiny)"
  start=$SECONDS
  if ! bash "scripts/bench/$bench.sh" > "target/bench-$bench-tiny.log" 2>&1; then
    cat "target/bench-$bench-tiny.log" >&2
    echo "error: scripts/bench/$bench.sh failed at its tiny size (above: its output)" >&2
    exit 1
  fi
  tail -n 3 "target/bench-$bench-tiny.log"
  echo "   ($((SECONDS - start)) s)"
done
