#!/usr/bin/env python3
"""The data-role ablation's table for docs/results (issue #34, point 4): paper-fmnist's main
entries as published (split 0, seed 0) against experiments/paper-fmnist-dedupe.yaml (the same
runs with the validation OOD set cleaned of the images it shares with the training outliers).
Reads two `oodlab results --format csv` files; prints Markdown. Standard library only.

    python3 scripts/results/dedupe_table.py AS_IS.csv DEDUPE.csv
"""

import csv
import sys

ENTRIES = ["baseline", "oe", "energy-oe", "mixoe-mixup", "mixoe-cutmix", "lmoe", "lmoe-authors-code"]
# The scores whose settings the validation OOD set chooses (docs/detectors.md), then the three
# that have none (a check: they must not move).
CHOSEN = ["knn", "react", "ash", "mahalanobis", "rmds", "vim", "gen", "odin"]
FIXED = ["msp", "maxlogit", "energy"]


def read(path, split0_seed0):
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if split0_seed0 and (r["seed"] != "0" or r["split"] != "0"):
                continue
            rows[(r["entry"], r["score"], r["ood_set"])] = r
    return rows


def main():
    as_is, dedupe = read(sys.argv[1], True), read(sys.argv[2], False)
    entries = [e for e in ENTRIES if any(k[0] == e for k in dedupe)]
    if not entries:
        print("No run of paper-fmnist-dedupe has finished yet.")
        return
    same_training = all(
        as_is[(e, "msp", "heldout")]["id_acc"] == dedupe[(e, "msp", "heldout")]["id_acc"]
        and as_is[(e, s, o)]["auroc"] == dedupe[(e, s, o)]["auroc"]
        for e in entries
        for s in FIXED
        for o in ("heldout", "mnist")
        if (e, s, o) in dedupe and (e, s, o) in as_is
    )
    print(f"Finished: {len(entries)} of {len(ENTRIES)} entries ({', '.join(entries)}).")
    print()
    print(
        "ID accuracy and the MSP, MaxLogit and Energy AUROCs of every finished entry are "
        + ("**identical** with and without the cleaning, to the last digit: the cleaning changes nothing a method trains on, as designed."
           if same_training else "**not identical** with and without the cleaning: something a method trains on changed, which the rule should not do — investigate.")
    )
    print()
    for ood in ("heldout", "mnist"):
        print(f"AUROC on `{ood}`, as published → with `data.dedupe: [val_ood]` (detectors whose settings the validation OOD set chooses):")
        print()
        print("| entry | " + " | ".join(CHOSEN) + " |")
        print("|---|" + "---|" * len(CHOSEN))
        moved = []
        for e in entries:
            cells = []
            for s in CHOSEN:
                a, b = as_is.get((e, s, ood)), dedupe.get((e, s, ood))
                if a is None or b is None:
                    cells.append("–")
                    continue
                x, y = float(a["auroc"]), float(b["auroc"])
                moved.append(abs(y - x))
                mark = "" if abs(y - x) < 0.0005 else (" ▲" if y > x else " ▼")
                cells.append(f"{x:.3f} → {y:.3f}{mark}")
            print(f"| {e} | " + " | ".join(cells) + " |")
        print()
        if moved:
            big = sum(1 for m in moved if m >= 0.0005)
            print(f"{big} of {len(moved)} cells moved by 0.0005 or more (▲ up, ▼ down); the largest move {max(moved):.4f}.")
            print()


if __name__ == "__main__":
    main()
