#!/usr/bin/env bash
# The dashboard's server time on a store of 10,000 runs, against the same routes on 100 runs, in
# one process through the router (no network). Prints a table; figures go to docs/performance.md.
#   bash scripts/bench/dashboard.sh [RUNS]
# The example also takes `--keep DIR` (keep and reuse the large store) and `--only ROUTE --repeat N`
# (time one route on a kept store, for a profiler).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release -q -p oodlab-web --example bench_dashboard -- --runs "${1:-10000}"
