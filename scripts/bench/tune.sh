#!/usr/bin/env bash
# The tuning stage's cost (issue #33, docs/performance.md "Tuning"): on the committed sample, OE's
# weight searched over 4 values
#   - exhaustively (every trial trains its full 3 epochs), and
#   - with ASHA (rungs of 1, 2, 3 epochs, one trial in 2 goes on),
# each then run on 2 seeds; and, as the reference measured in the same run, the same 4 weights
# as 4 plain entries (no search) on the same 2 seeds. Prints each search's choice, objective and epochs spent, and the
# scheduler's own time per run: the grid's wall time less the time its workers ran (run start to
# end, from the store), divided by its runs, for the plain grid and for each search.
#   bash scripts/bench/tune.sh          # --jobs 1, ~1 minute on 2 cores
#   TINY=1 bash scripts/bench/tune.sh   # the same (the sample is already tiny)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${OODLAB:-target/release/oodlab}
[ -x "$bin" ] || cargo build --release -p oodlab-cli
command -v sqlite3 >/dev/null || { echo "error: sqlite3 is needed (apt-get install sqlite3)" >&2; exit 1; }
work=$(mktemp -d /tmp/oodlab-bench-tune.XXXXXX)
sample=$(cd datasets/sample && pwd)

spec() { # name, method block
  cat <<EOF
name: $1
datasets:
  fashion:
    format: idx
    classes: 10
    train: {images: $sample/fashion-mnist/train-images-idx3-ubyte.gz, labels: $sample/fashion-mnist/train-labels-idx1-ubyte.gz}
    test: {images: $sample/fashion-mnist/t10k-images-idx3-ubyte.gz, labels: $sample/fashion-mnist/t10k-labels-idx1-ubyte.gz}
  mnist:
    format: idx
    classes: 10
    test: {images: $sample/mnist/t10k-images-idx3-ubyte.gz, labels: $sample/mnist/t10k-labels-idx1-ubyte.gz}
  animal:
    format: idx
    classes: 10
    train: {images: $sample/animal-mnist/train-images-idx3-ubyte.gz, labels: $sample/animal-mnist/train-labels-idx1-ubyte.gz}
data:
  id: fashion
  splits: [{classes: [0, 1, 3, 5, 8, 9]}]
  ood: [mnist]
  outliers: animal
  train_limit: 400
model: {channels: [4, 8, 8]}
train: {epochs: 3, batch_size: 64}
eval: {max_acc_drop: 100}
methods:
  baseline: {method: ce}
$2
grid:
  seeds: [0, 1]
EOF
}

plain=$(for w in 0.1 0.5 1 2; do printf '  oe-%s:\n    method: {kind: oe, weight: %s}\n    init_from: baseline\n' "$w" "$w"; done)
tuned() { # schedule line
  cat <<EOF
  oe:
    method: {kind: oe, weight: 0.5}
    init_from: baseline
    tune:
      space: {method.weight: [0.1, 0.5, 1, 2]}
      sampler: grid
$1
      objective: {metric: auroc, score: msp, on: val_ood}
EOF
}

measure() { # name, spec text
  local home=$work/$1
  mkdir -p "$home"
  printf '%s\n' "$2" > "$work/$1.yaml"
  local start end
  start=$(date +%s.%N)
  "$bin" --home "$home" run "$work/$1.yaml" --jobs 1 > "$work/$1.log" 2>&1
  end=$(date +%s.%N)
  # Every run the scheduler ran, trial runs included (they are in no experiment's runs table).
  local q="SELECT COUNT(*), SUM((julianday(ended_at) - julianday(started_at)) * 86400) FROM runs WHERE status = 'done'"
  local row
  row=$(sqlite3 "$home/oodlab.db" "$q")
  local n=${row%%|*} ran=${row##*|}
  local wall per
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
  per=$(awk -v w="$wall" -v r="$ran" -v n="$n" 'BEGIN { print (w - r) / n }')
  printf '%-10s %4d runs  wall %6.1f s  workers %6.1f s  scheduler %5.3f s a run\n' "$1" "$n" "$wall" "$ran" "$per"
  echo "$per" > "$work/$1.overhead"
}

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs), model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | xargs)), $(nproc) cores"
echo "tuning stage cost on the sample, $cpu, --jobs 1"
measure plain "$(spec plain "$plain")"
measure exhaustive "$(spec exhaustive "$(tuned '')")"
measure asha "$(spec asha "$(tuned '      schedule: {asha: {eta: 2, min_epochs: 1}}')")"
for s in exhaustive asha; do
  row=$(sqlite3 "$work/$s/oodlab.db" "SELECT trial, field_values, printf('%.4f', objective), spent_epochs, budget_epochs FROM tune_choices")
  IFS='|' read -r trial values objective spent budget <<< "$row"
  echo "$s: chose trial $trial $values (val-OOD MSP AUROC $objective), $spent of $budget epochs of trials"
done
same=$(sqlite3 "$work/exhaustive/oodlab.db" "SELECT field_values FROM tune_choices")
asha=$(sqlite3 "$work/asha/oodlab.db" "SELECT field_values FROM tune_choices")
[ "$same" = "$asha" ] && echo "ASHA chose what the exhaustive search chose" || echo "ASHA chose $asha, the exhaustive search $same"
ratio() { awk -v a="$(cat "$work/$1.overhead")" -v b="$(cat "$work/plain.overhead")" 'BEGIN { print a / b }'; }
printf 'scheduler time a run, tuned / plain grid: exhaustive %.2fx, asha %.2fx\n' "$(ratio exhaustive)" "$(ratio asha)"
rm -rf "$work"
