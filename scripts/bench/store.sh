#!/usr/bin/env bash
# oodlab's store against MLflow's SQLite tracking store (issue #20, item 7): the same runs (10
# params, 20 epoch points, 25 final metrics each), recorded with the same arrival pattern (params at
# the start, each epoch as it ends, the final metrics together), then the same filtered query
# (method = lmoe and auroc > 0.5), at 500, 3,000 and 100,000 runs. At each size the last TIMED runs
# (all of them when fewer) are recorded through each tool's own API and timed; those before them are
# written quickly (MLflow's client takes ~50-200 ms a run: 100,000 would take hours). Prints each
# side's figures and, last, `ratio mlflow/oodlab = X` for recording and for the query at each size
# (above 1: oodlab is faster). Goals: recording >= 50x, the query <= 100 ms at 100,000 runs.
#   bash scripts/bench/store.sh                     # ~10 minutes on 2 cores
#   SIZES='500 3000' TIMED=500 bash scripts/bench/store.sh
#   TINY=1 bash scripts/bench/store.sh        # 40 runs, 10 timed: seconds after MLflow's install (CI)
# MLflow comes from PyPI into BENCH_VENV (default .venv-mlflow), once.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${BENCH_VENV:-$here/.venv-mlflow}
if [ -n "${TINY:-}" ]; then sizes=${SIZES:-40} timed=${TIMED:-10}; else sizes=${SIZES:-500 3000 100000} timed=${TIMED:-1000}; fi
cd "$here"
if ! "$venv/bin/python" -c "import mlflow" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "mlflow==${MLFLOW_VERSION:-3.17.2}"
fi
cargo build -q --release -p oodlab-store --example bench_store
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; MLflow $("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)'), SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1)"
results=()
for n in $sizes; do
  # oodlab's side takes seconds: three stores, the median of each figure (this machine's speed
  # drifts; MLflow's side takes minutes and runs once).
  tries=()
  for k in 1 2 3; do
    tries+=("$(target/release/examples/bench_store "$dir/oodlab-$n-$k.db" "$n" "$timed")")
    rm -f "$dir/oodlab-$n-$k.db"*
  done
  ours=$(python3 - "${tries[@]}" <<'PY'
import json, statistics, sys
t = [json.loads(a) for a in sys.argv[1:]]
out = dict(t[0])
for k in ("record_s", "query_ms", "query_json_ms"):
    out[k] = statistics.median(x[k] for x in t)
print(json.dumps(out))
PY
)
  echo "oodlab $n: $ours"
  # MLflow writes its artifact folders under the working directory's mlruns/ unless told: the
  # script gives each experiment a folder in a temporary directory, and runs from $dir anyway.
  theirs=$(cd "$dir" && "$venv/bin/python" "$here/scripts/bench/store_mlflow.py" "$dir/mlflow-$n.db" "$n" "$timed" 2>/dev/null)
  echo "mlflow $n: $theirs"
  results+=("$ours|$theirs")
done
python3 - "${results[@]}" <<'PY'
import json, sys
for pair in sys.argv[1:]:
    ours, theirs = (json.loads(s) for s in pair.split("|"))
    n = ours["runs"]
    assert ours["matches"] == theirs["matches"], f"the stores disagree at {n} runs: {ours['matches']} vs {theirs['matches']} matches"
    print(f"{n} runs: recording {ours['timed']} runs: oodlab {ours['record_s'] / ours['timed'] * 1000:.2f} ms a run, "
          f"mlflow {theirs['record_s'] / theirs['timed'] * 1000:.1f} ms a run; query ({ours['matches']} matches): "
          f"oodlab {ours['query_ms']:.1f} ms (as JSON rows {ours['query_json_ms']:.1f} ms), mlflow {theirs['query_ms']:.0f} ms")
for pair in sys.argv[1:]:
    ours, theirs = (json.loads(s) for s in pair.split("|"))
    n = ours["runs"]
    rec = (theirs["record_s"] / theirs["timed"]) / (ours["record_s"] / ours["timed"])
    print(f"{n} runs: recording: ratio mlflow/oodlab = {rec:.1f}")
    print(f"{n} runs: query: ratio mlflow/oodlab = {theirs['query_ms'] / ours['query_ms']:.1f}")
PY
