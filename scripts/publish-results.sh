#!/usr/bin/env bash
# Writes docs/results/ from a home where experiments/paper-fmnist.yaml and
# experiments/mixoe-protocol.yaml have run (on the full data: scripts/fetch-data.sh):
#   docs/results/<experiment>/   `oodlab report` of each: tables (mean ± std, paired tests, claims),
#                                ROC curves, histograms, logit PCA, interpolation paths
#   docs/results/README.md       each claim of the LMOE abstract (docs/results/claims.yaml) with its
#                                paired tests and verdict on each experiment, and the "Where to
#                                mix" ablation, as the reports made them: no number in it is typed
#                                by hand (docs/results/what-changed.md, when present, is the one
#                                hand-written paragraph: what the latest re-run changed).
# Usage: scripts/publish-results.sh [HOME]   (default .oodlab; OODLAB=path/to/oodlab to pick the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
home=${1:-$here/.oodlab}
oodlab=${OODLAB:-$here/target/release/oodlab}
out=$here/docs/results
pairs=(--pair lmoe:oe --pair lmoe:mixoe-mixup --pair lmoe:mixoe-cutmix)
exps=(paper-fmnist mixoe-protocol)
# The fairly tuned comparison (issue #33), once its grid has been queued on this home.
if "$oodlab" --home "$home" status paper-fmnist-tuned >/dev/null 2>&1; then
  exps+=(paper-fmnist-tuned)
fi
for exp in "${exps[@]}"; do
  rm -rf "${out:?}/$exp"
  "$oodlab" report "$here/experiments/$exp.yaml" --home "$home" --out "$out/$exp" \
    --baseline baseline "${pairs[@]}" --claims "$out/claims.yaml"
done

# The data-role ablation (issue #34): its report, and both experiments' results for its table.
dedupe=
if "$oodlab" --home "$home" status paper-fmnist-dedupe >/dev/null 2>&1; then
  rm -rf "${out:?}/paper-fmnist-dedupe"
  "$oodlab" report "$here/experiments/paper-fmnist-dedupe.yaml" --home "$home" --out "$out/paper-fmnist-dedupe" --baseline baseline
  dedupe=$(mktemp -d)
  trap 'rm -rf "$dedupe"' EXIT
  "$oodlab" --home "$home" results paper-fmnist --format csv > "$dedupe/as-is.csv"
  "$oodlab" --home "$home" results paper-fmnist-dedupe --format csv > "$dedupe/dedupe.csv"
fi

# The audit of the benchmark's data roles (docs/audit.md): the tables and contact sheets.
rm -rf "${out:?}/audit"
mkdir -p "$out/audit"
"$oodlab" audit "$here/experiments/paper-fmnist.yaml" --sheets "$out/audit" > "$out/audit/audit.txt"

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
  cat <<'HEAD'
# Results: does this benchmark support the LMOE abstract's claims?

Each claim of the LMOE abstract (arXiv 2509.11892) is written as paired tests in
[`claims.yaml`](claims.yaml) and checked by `oodlab report --claims` on the finished runs of the
experiments below, on the Fashion-MNIST fine-grained benchmark (ID: 6 Fashion-MNIST classes;
fine-grained OOD `heldout`: the 4 held-out classes; coarse OOD: MNIST; outliers: Animal-MNIST):

- [`paper-fmnist/`](paper-fmnist/report.md): [`experiments/paper-fmnist.yaml`](../../experiments/paper-fmnist.yaml),
  the benchmark's shortened fine-tune protocol, 3 seeds × 3 splits, with LMOE's ablations;
- [`mixoe-protocol/`](mixoe-protocol/report.md): [`experiments/mixoe-protocol.yaml`](../../experiments/mixoe-protocol.yaml),
  MixOE's protocol exactly (all fine-tunes from the seed-0 baseline), seeds 0 and 1, split 0.
HEAD
  if [ "${#exps[@]}" -gt 2 ]; then
    cat <<'TUNED'
- [`paper-fmnist-tuned/`](paper-fmnist-tuned/report.md): [`experiments/paper-fmnist-tuned.yaml`](../../experiments/paper-fmnist-tuned.yaml),
  paper-fmnist's methods each searched first with one equal budget on the validation OOD set
  (never a test set), then compared over 3 seeds × 3 splits with the chosen settings.
TUNED
  fi
  cat <<'HEAD'

A test pairs two method entries over matched (seed, split) cells and supports the claim when the
first is better with a two-sided Wilcoxon signed-rank p below 0.05; a claim is supported when all
its tests are. Where the verdict is "not supported" or "contradicted", this benchmark does not
back the claim, whatever the paper found on its own benchmarks (ResNet-50, CUB-200 and others).
Everything below, numbers and verdicts, is written by `scripts/publish-results.sh` from the store;
the full tables, the flagged runs (the one-pass `lmoe-joint` ablation among them, when it
collapses) and the figures are in each experiment's report.
HEAD
  # What the latest re-run changed in the verdicts, in the words of whoever re-ran it (the one
  # part of this page not computed from the store).
  if [ -f "$out/what-changed.md" ]; then
    printf '\n'
    cat "$out/what-changed.md"
  fi
  printf '\nMade by `scripts/publish-results.sh` on %s (%s), oodlab %s.\n' "$(date -u +%Y-%m-%d)" "$cpu" "$("$oodlab" --version | cut -d' ' -f2)"
  for exp in "${exps[@]}"; do
    printf '\n## %s\n' "$exp"
    # How much of the grid the verdicts rest on (the report's own count): a grid still training
    # is published as such, never as if complete.
    printf '\nGrid: %s\n' "$(sed -n '/^## Grid$/{n;n;p;q}' "$out/$exp/report.md")"
    # A tuned experiment's searches: what each entry was given and chose (the report's own
    # "Tuning" section, up to the next section), before the claims that rest on them.
    if grep -q '^## Tuning$' "$out/$exp/report.md"; then
      printf '\n### Tuning\n'
      sed -n '/^## Tuning$/,/^## /{/^## /d;p}' "$out/$exp/report.md" | sed 's/^### /#### /'
    fi
    # claims.md without its title line; its headings one level down.
    tail -n +2 "$out/$exp/claims.md" | sed 's/^### /#### /; s/^## /### /'
    # The report's "Where to mix" (when the experiment has that ablation), its figures' paths
    # made relative to this folder.
    if [ -f "$out/$exp/where-to-mix.md" ]; then
      printf '
### Where to mix
'
      tail -n +2 "$out/$exp/where-to-mix.md" | sed "s#](figures/#]($exp/figures/#g"
    fi
  done
  printf '\n## Data roles: what `oodlab audit` finds in paper-fmnist\n\n'
  printf 'Exact / near duplicate pairs between (and, on the diagonal, within) the data roles of each split\n'
  printf '(docs/audit.md); the closest pairs are drawn in [`audit/`](audit/). Split 0:\n\n```\n'
  sed -n '2,/^(the diagonal/p' "$out/audit/audit.txt" | sed '/^(the diagonal/d'
  printf '```\n\nAll splits: [`audit/audit.txt`](audit/audit.txt).\n'
  # The labelled ablation of that finding (issue #34, point 4), once its grid is on the home.
  if [ -n "$dedupe" ]; then
    printf '\n### The finding as an ablation: `data.dedupe: [val_ood]`\n\n'
    printf '[`experiments/paper-fmnist-dedupe.yaml`](../../experiments/paper-fmnist-dedupe.yaml): paper-fmnist'"'"'s main entries on split 0, seed 0,\n'
    printf 'with the validation OOD slice cleaned of the images it shares with the training outliers (the detectors choose their\n'
    printf 'settings on that slice). Against the published runs of the same cell ([report](paper-fmnist-dedupe/report.md)):\n\n'
    python3 "$here/scripts/results/dedupe_table.py" "$dedupe/as-is.csv" "$dedupe/dedupe.csv" "$home/oodlab.db"
  fi
} > "$out/README.md"
echo "wrote $out/README.md and the reports in ${exps[*]/#/$out/}"
