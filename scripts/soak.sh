#!/usr/bin/env bash
# Fault soak (issue #20): runs a grid (the quickstart with more seeds) in a background scheduler
# while injecting faults at random times drawn from SEED, lets it finish, then counts what was lost
# or done twice, the processes left behind, and the results that differ from an undisturbed run of
# the same grid in another home (every OOD metric, run metric and epoch, and the bytes of every
# run's checkpoint, scores, features and analysis files).
#
#   bash scripts/soak.sh                            # 3 seeds (12 runs), ~8 minutes on 2 cores
#   SEEDS='[0]' bash scripts/soak.sh                # the short version CI runs, ~3 minutes
#   SOAK_KINDS=store-lost SEEDS='[0]' bash scripts/soak.sh   # one kind of fault only
#
# Faults, one every FAULT_EVERY seconds on average (uniform in 0.5x-1.5x), kinds drawn at random:
#   kill-worker      kill -9 of a running worker (its attempt fails and is retried; it resumes)
#   kill-scheduler   kill -9 of the scheduler, then a new one (`oodlab daemon --until-empty`)
#   stop-worker      SIGSTOP of a worker: a stall, stopped after resources.stall_timeout
#   corrupt-ckpt     a mid-run checkpoint cut in half (refused with a note; the run starts over)
#   truncate-events  the last line of a running run's events.jsonl cut in half
#   read-lock        a reader holding a read transaction on the store for 5 s (sqlite3)
#   store-lost       the scheduler and its workers killed (-9), the store deleted or cut in half,
#                    then what a user does: `oodlab store rebuild` and the spec run again (the
#                    queue is rebuilt from the spec; finished runs are not trained again)
#   disk-full        the home's filesystem filled for 3 s (the home is then a small tmpfs; where
#                    mounting one is not allowed, this kind is left out and the script says so)
# Prints, last: `faults injected N, runs lost L, runs done twice D, orphan processes O, results
# differing from an undisturbed run R`, and exits non-zero unless L, D, O and R are all 0.
# Needs sqlite3 (the checks read both stores with it). Figures: docs/reliability.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
seed=${SEED:-1}
seeds=${SEEDS:-[0,1,2]}
every=${FAULT_EVERY:-5}
limit=${SOAK_TIMEOUT:-1200}
work=${SOAK_DIR:-$(mktemp -d /tmp/oodlab-soak.XXXXXX)}
bin=${OODLAB:-$here/target/release/oodlab}
[ -x "$bin" ] || (cd "$here" && cargo build -q --release -p oodlab-cli)
command -v sqlite3 >/dev/null || { echo "soak: needs the sqlite3 CLI (apt-get install sqlite3)" >&2; exit 2; }
spec=$here/experiments/quickstart.yaml
# Retries enough for every fault, at once; stalls found within seconds; workers stopped at once; mid-run
# checkpoints inside epochs too (the reference gets the same settings; none changes a result).
sets=(--set "grid.seeds=$seeds" --set resources.retries=100 --set resources.retry_delay=0 --set resources.stall_timeout=3 --set resources.grace_seconds=1
  --set train.checkpoint_every=10)
log() { echo "soak: $*" >&2; }
RANDOM=$seed

home=$work/home
ref=$work/reference
mkdir -p "$work"
if mountpoint -q "$home" 2>/dev/null; then umount "$home"; fi
rm -rf "$home" "$ref"
mkdir -p "$home"
kinds_all=(kill-worker kill-scheduler stop-worker corrupt-ckpt truncate-events read-lock store-lost)
# A small filesystem of its own, so that filling it fills only the home.
if mount -t tmpfs -o size="${SOAK_DISK_MB:-96}m" oodlab-soak "$home" 2>/dev/null; then
  kinds_all+=(disk-full)
  trap 'umount "$home" 2>/dev/null || true' EXIT
else
  log "cannot mount a tmpfs for the home (not root?): the disk-full fault is left out"
fi

log "undisturbed reference run in $ref"
"$bin" --home "$ref" run "$spec" "${sets[@]}" --jobs 2 >/dev/null 2>"$work/reference.log"
planned=$(sqlite3 "$ref/oodlab.db" "SELECT count(*) FROM runs")

scheduler() { pgrep -f -- "--home $home daemon" | head -1 || true; }
workers() { pgrep -f -- "--home $home worker" || true; }
# In a subshell, so that it is no job of this script's (bash would report each one killed).
start_scheduler() { ("$bin" --home "$home" daemon --until-empty --jobs 2 >>"$work/scheduler.log" 2>&1 &) }
done_runs() { sqlite3 "$home/oodlab.db" "SELECT count(*) FROM runs WHERE status = 'done'" 2>/dev/null || echo 0; }
running_dirs() { sqlite3 "$home/oodlab.db" "SELECT run_dir FROM runs WHERE status = 'running'" 2>/dev/null || true; }
pick() { local a=("$@"); ((${#a[@]})) && echo "${a[RANDOM % ${#a[@]}]}"; }

# SOAK_KINDS='store-lost kill-worker' draws from these kinds only (to soak one fault on purpose).
if [ -n "${SOAK_KINDS:-}" ]; then read -r -a kinds_all <<<"$SOAK_KINDS"; fi
log "soaking in $home (seed $seed, a fault every ~${every}s, kinds: ${kinds_all[*]})"
start=$SECONDS
"$bin" --home "$home" run "$spec" "${sets[@]}" --jobs 2 --detach >/dev/null 2>"$work/queue.log"
faults=0
declare -A kinds
while ((SECONDS - start < limit)); do
  sleep "$(awk -v r=$RANDOM -v e="$every" 'BEGIN { printf "%.2f", e * (0.5 + r / 32767) }')"
  if [ -z "$(scheduler)" ]; then
    # Finished, or gone (killed by a fault, or stopped by a full disk): a new one goes on.
    (($(done_runs) == planned)) && break
    start_scheduler
    continue
  fi
  kind=$(pick "${kinds_all[@]}")
  case $kind in
    kill-worker) pid=$(pick $(workers)) || continue; kill -9 "$pid" 2>/dev/null || continue ;;
    kill-scheduler)
      pid=$(scheduler)
      kill -9 "$pid" 2>/dev/null || continue
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      start_scheduler
      ;;
    stop-worker) pid=$(pick $(workers)) || continue; kill -STOP "$pid" 2>/dev/null || continue ;;
    corrupt-ckpt)
      f=$(pick $(find "$home/runs" -name resume.safetensors 2>/dev/null)) || continue
      size=$(stat -c %s "$f" 2>/dev/null) || continue
      truncate -s $((size / 2)) "$f" 2>/dev/null || continue
      ;;
    truncate-events)
      d=$(pick $(running_dirs)) || continue
      f=$d/events.jsonl
      size=$(stat -c %s "$f" 2>/dev/null) || continue
      last=$(tail -n 1 "$f" | wc -c)
      ((last > 2)) || continue
      truncate -s $((size - last / 2)) "$f" 2>/dev/null || continue
      ;;
    read-lock)
      (printf 'BEGIN;\nSELECT count(*) FROM runs;\n'; sleep 5; printf 'COMMIT;\n') | sqlite3 "$home/oodlab.db" >/dev/null 2>&1 &
      ;;
    store-lost)
      pid=$(scheduler)
      kill -9 "$pid" 2>/dev/null || continue
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      for w in $(workers); do kill -9 "$w" 2>/dev/null || true; done
      if ((RANDOM % 2)); then
        rm -f "$home/oodlab.db" "$home/oodlab.db-wal" "$home/oodlab.db-shm"
      else
        size=$(stat -c %s "$home/oodlab.db" 2>/dev/null) || size=0
        truncate -s $((size / 2)) "$home/oodlab.db" 2>/dev/null || true
      fi
      # (A full disk may refuse the new store for a moment: again until it is made.)
      until "$bin" --home "$home" store rebuild >>"$work/rebuild.log" 2>&1; do sleep 1; done
      "$bin" --home "$home" run "$spec" "${sets[@]}" --jobs 2 --detach >/dev/null 2>>"$work/queue.log" || true
      ;;
    disk-full)
      (dd if=/dev/zero of="$home/filler" bs=1M >/dev/null 2>&1 || true; sleep 3; rm -f "$home/filler") &
      ;;
  esac
  faults=$((faults + 1))
  kinds[$kind]=$((${kinds[$kind]:-0} + 1))
  log "fault $faults: $kind"
done
if ((SECONDS - start >= limit)); then log "no faults after ${limit}s; letting the grid finish"; fi
# The faults' own processes (a reader, a filler) end first; then the grid finishes undisturbed.
wait
for _ in 1 2 3; do
  (($(done_runs) < planned)) || break
  pid=$(scheduler)
  if [ -n "$pid" ]; then
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
  else
    "$bin" --home "$home" daemon --until-empty --jobs 2 >>"$work/scheduler.log" 2>&1 || true
  fi
done
wait
sleep 1

lost=$((planned - $(done_runs)))
twice=$(sqlite3 "$home/oodlab.db" "SELECT count(*) FROM (SELECT run_id FROM attempts WHERE status = 'done' GROUP BY run_id HAVING count(*) > 1)")
orphans=$(pgrep -f -- "--home $home" | wc -l || true)
# What a run produced, at full precision; what the process measured of itself (time, memory) left out.
results() {
  sqlite3 "$1/oodlab.db" "SELECT run_id, score, ood_set, auroc, fpr95, aupr_in, aupr_out, n_id, n_ood FROM ood_metrics ORDER BY 1, 2, 3;
    SELECT run_id, name, value FROM run_metrics WHERE name NOT IN ('peak_rss_mb', 'gpu_mem_mb') ORDER BY 1, 2;
    SELECT run_id, epoch, train_loss, train_acc, val_acc, lr FROM epochs ORDER BY 1, 2;
    SELECT run_id, kind, path FROM artifacts ORDER BY 1, 2;"
  (cd "$1/runs" && find . -name '*.safetensors' ! -name 'resume.safetensors' -print0 | sort -z | xargs -0 sha256sum)
}
differing=$(diff <(results "$ref") <(results "$home") | grep -c '^[<>]' || true)
for k in "${!kinds[@]}"; do log "  $k: ${kinds[$k]}"; done
log "attempts by outcome: $(sqlite3 "$home/oodlab.db" "SELECT group_concat(status || ' ' || n, ', ') FROM (SELECT status, count(*) AS n FROM attempts GROUP BY status)")"
log "attempts resumed from a mid-run checkpoint: $(sqlite3 "$home/oodlab.db" "SELECT count(*) FROM attempts WHERE resumed_epoch IS NOT NULL"); checkpoints refused: $(sqlite3 "$home/oodlab.db" "SELECT count(*) FROM attempts WHERE notes LIKE '%refused%'")"
log "planned runs $planned; soak wall $((SECONDS - start)) s; reference and store kept in $work"
echo "faults injected $faults, runs lost $lost, runs done twice $twice, orphan processes $orphans, results differing from an undisturbed run $differing"
((lost == 0 && twice == 0 && orphans == 0 && differing == 0))
