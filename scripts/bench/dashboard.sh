#!/usr/bin/env bash
# The dashboard's server time on a store of 10,000 runs, against the same routes on 100 runs, in
# one process through the router (no network). Prints a table; figures go to docs/performance.md.
#   bash scripts/bench/dashboard.sh [RUNS]
#   TINY=1 bash scripts/bench/dashboard.sh    # 200 runs: seconds (CI)
# The example also takes `--keep DIR` (keep and reuse the large store) and `--only ROUTE --repeat N`
# (time one route on a kept store, for a profiler).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release -q -p oodlab-web --example bench_dashboard -- --runs "${1:-$([ -n "${TINY:-}" ] && echo 200 || echo 10000)}"
