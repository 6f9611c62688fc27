#!/usr/bin/env bash
# The tuning stage's cost on the paper's full data (issue #33 point 6, docs/performance.md
# "ASHA against an exhaustive search on the full data"): OE's space of experiments/paper-fmnist-tuned.yaml
# (weight 0.1, 0.25, 0.5, 1, 2 × the fine-tune's learning rate, its log range [1e-3, 3e-2] taken
# at 3 log-spaced points, 15 settings), judged as that spec judges (MSP AUROC on the validation OOD
# slice, split 0, seed 0), searched
#   - exhaustively: every setting trains its full 3 epochs (45 epochs), and
#   - with ASHA as the paper spec schedules it (rungs of 1 and 3 epochs, one trial in 3 goes on),
# both with the grid sampler, so that both see the same 15 settings. Each search runs in its own
# home (a trial of one would otherwise be found done by the other: ASHA's last rung has the id of
# the exhaustive trial it equals), copied from one home where the shared baseline trained once,
# the two side by side with one core each (`--jobs 1 --threads 1`). The data, model, baseline and
# fine-tune are the paper spec's; only the scores from logits are listed (MSP, MaxLogit, Energy:
# they are part of a run's id, the post-hoc detectors are not), so the baseline is the paper
# grid's own run (the same id).
#
# Prints each search's choice, objective, epochs spent, wall time, and the scheduler's own time
# per run (wall less the time its workers ran); then every setting's objective in the exhaustive
# search with its paired-bootstrap distance to the best (scripts/bench/tune_paper_noise.py), and
# whether ASHA's last-rung trials equal the exhaustive trials of the same values to the last digit.
#   bash scripts/bench/tune-paper.sh               # ~1.5 hours on 2 cores
#   WORK=/tmp/x bash scripts/bench/tune-paper.sh   # keep the homes there (default: a temporary folder, removed)
#   BASE_HOME=~/paper bash scripts/bench/tune-paper.sh  # start from a home where experiments/paper-fmnist.yaml ran
#   TINY=1 bash scripts/bench/tune-paper.sh        # the committed sample, 400 images, a tiny network: ~2 minutes (CI)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
bin=${OODLAB:-target/release/oodlab}
[ -x "$bin" ] || cargo build --release -p oodlab-cli
command -v sqlite3 >/dev/null || { echo "error: sqlite3 is needed (apt-get install sqlite3)" >&2; exit 1; }
[ -n "${TINY:-}" ] || [ -f datasets/full/fashion-mnist/train-images-idx3-ubyte.gz ] || bash scripts/fetch-data.sh
# The noise script reads the homes with python/oodlab (NumPy, pandas) and scikit-learn's AUROC.
python=${PYTHON:-$here/.venv-bench/bin/python}
if ! "$python" -c "import numpy, pandas, sklearn" 2>/dev/null; then
  [ -n "${PYTHON:-}" ] && { echo "error: $python lacks numpy, pandas or scikit-learn" >&2; exit 1; }
  [ -x "$python" ] || python3 -m venv "$here/.venv-bench"
  "$python" -m pip install -q numpy pandas scikit-learn
fi
if [ -n "${WORK:-}" ]; then work=$WORK; mkdir -p "$work"; else work=$(mktemp -d /tmp/oodlab-bench-tune-paper.XXXXXX); trap 'rm -rf "$work"' EXIT; fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# The paper spec up to its methods, without its top-level tune block, the data paths absolute;
# at the tiny size, the committed sample, 400 training images, a 1-epoch baseline of 4-8-8 channels.
tiny=()
[ -n "${TINY:-}" ] && tiny=(-e 's#/datasets/full/#/datasets/sample/#g' -e 's/^data:$/data:\n  train_limit: 400/'
  -e 's/^model: .*/model: {arch: cnn, channels: [4, 8, 8]}/' -e 's/^  epochs: 8$/  epochs: 1/')
head_of_spec() {
  awk '/^tune:/ {skip = 1; next} /^[a-z]/ {skip = 0} /^methods:/ {exit} !skip' experiments/paper-fmnist-tuned.yaml |
    sed -e "s#\\.\\./datasets/#$here/datasets/#g" -e 's/^  scores: \[.*\]/  scores: [msp, maxlogit, energy]/' -e "s/^name: .*/name: $1/" "${tiny[@]}"
}
spec() { # name, schedule line
  head_of_spec "$1"
  cat <<EOF
methods:
  baseline: {method: ce}
  oe:
    method: {kind: oe, weight: 0.5}
    init_from: baseline
    train: {epochs: 3, optimizer: {lr: 0.01}, keep: last}
    tune:
      space: {method.weight: [0.1, 0.25, 0.5, 1.0, 2.0], train.optimizer.lr: [0.001, 0.005477, 0.03]}
      sampler: grid
$2
      objective: {metric: auroc, score: msp, on: val_ood}
      seeds: [0]
      splits: [0]
grid:
  seeds: [0]
  splits: [0]
EOF
}
spec exhaustive '' > "$work/exhaustive.yaml"
spec asha '      schedule: {asha: {min_epochs: 1, eta: 3}}' > "$work/asha.yaml"
spec base '' | awk '/^  oe:/ {exit} {print} END {print "grid:\n  seeds: [0]\n  splits: [0]"}' > "$work/base.yaml"

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs), model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | xargs)), $(nproc) cores"
data="the full data"
[ -n "${TINY:-}" ] && data="the committed sample (TINY)"
echo "tuning on $data, $cpu"
if [ -n "${BASE_HOME:-}" ] && [ ! -f "$work/base/oodlab.db" ]; then
  # A home where the paper grid ran holds this baseline (the same run id): copy its store, read
  # its run folders in place, and take its other queued grids off the copies' queue.
  mkdir -p "$work/base"
  sqlite3 "$BASE_HOME/oodlab.db" ".backup '$work/base/oodlab.db'"
  for g in $(sqlite3 "$work/base/oodlab.db" "SELECT DISTINCT experiment FROM queue WHERE state = 'queued'"); do
    "$bin" --home "$work/base" queue rm "$g" > /dev/null 2>&1
  done
fi
echo "the shared baseline (split 0, seed 0), trained once unless the base home has it"
"$bin" --home "$work/base" run "$work/base.yaml" > "$work/base.log" 2>&1

measure() { # name
  local home=$work/$1
  rm -rf "$home"
  cp -a "$work/base" "$home"
  local done_before start end
  done_before=$(sqlite3 "$home/oodlab.db" "SELECT group_concat(quote(id)) FROM runs WHERE status = 'done'")
  start=$(date +%s.%N)
  "$bin" --home "$home" run "$work/$1.yaml" --jobs 1 --threads 1 > "$work/$1.log" 2>&1
  end=$(date +%s.%N)
  # Every run this search's scheduler ran: its trials and its final run (not the copied baseline).
  sqlite3 "$home/oodlab.db" "SELECT COUNT(*), SUM((julianday(ended_at) - julianday(started_at)) * 86400) FROM runs WHERE status = 'done' AND id NOT IN ($done_before)" > "$work/$1.ran"
  awk -v a="$start" -v b="$end" 'BEGIN { print b - a }' > "$work/$1.wall"
}
# SEARCHES=asha measures that one again, reading the other from WORK as an earlier run left it
# (SEARCHES=" ": none, only the summary).
pids=()
for s in ${SEARCHES:-exhaustive asha}; do
  measure "$s" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for s in exhaustive asha; do
  [ -f "$work/$s.wall" ] || { echo "error: $work has no finished $s search (SEARCHES=$s measures it)" >&2; exit 1; }
done

for s in exhaustive asha; do
  IFS='|' read -r n ran < "$work/$s.ran"
  wall=$(cat "$work/$s.wall")
  # (A home copied from BASE_HOME also holds that home's searches: each query names its experiment.)
  row=$(sqlite3 "$work/$s/oodlab.db" "SELECT trial, field_values, printf('%.4f', objective), spent_epochs, budget_epochs FROM tune_choices WHERE experiment = '$s'")
  IFS='|' read -r trial values objective spent budget <<< "$row"
  trials=$(sqlite3 "$work/$s/oodlab.db" "SELECT COUNT(DISTINCT run_id) FROM tune_trials WHERE experiment = '$s'")
  printf '%-10s chose trial %s %s (val-OOD MSP AUROC %s), %s of %s epochs of trials, %s trial runs; wall %.0f s, workers %.0f s over %s runs, scheduler %.3f s a run\n' \
    "$s" "$trial" "$values" "$objective" "$spent" "$budget" "$trials" "$wall" "$ran" "$n" "$(awk -v w="$wall" -v r="$ran" -v n="$n" 'BEGIN { print (w - r) / n }')"
done
same=$(sqlite3 "$work/exhaustive/oodlab.db" "SELECT field_values FROM tune_choices WHERE experiment = 'exhaustive'")
asha=$(sqlite3 "$work/asha/oodlab.db" "SELECT field_values FROM tune_choices WHERE experiment = 'asha'")
[ "$same" = "$asha" ] && echo "ASHA chose what the exhaustive search chose" || echo "ASHA chose $asha, the exhaustive search $same"
# With BASE_HOME: the paper spec's own search of OE (TPE over the continuous learning rate, 8
# trials, 24 epochs) judged against the exhaustive grid's best on the same validation images.
also=()
if [ -n "${BASE_HOME:-}" ]; then
  paper=$(sqlite3 "$BASE_HOME/oodlab.db" "SELECT t.run_id FROM tune_choices c JOIN tune_trials t ON t.search = c.search AND t.trial = c.trial
    WHERE c.experiment = 'paper-fmnist-tuned' AND c.entry = 'oe' ORDER BY t.rung DESC LIMIT 1")
  [ -n "$paper" ] && also=(--also "the paper spec's search (TPE + ASHA, 8 trials)=$BASE_HOME:$paper")
fi
PYTHONPATH=$here/python "$python" scripts/bench/tune_paper_noise.py "$work/exhaustive" "$work/asha" "${also[@]}"
