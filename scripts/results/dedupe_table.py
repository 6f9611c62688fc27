#!/usr/bin/env python3
"""The data-role ablation's table for docs/results (issue #34, point 4): paper-fmnist's main
entries as published (split 0, seed 0) against experiments/paper-fmnist-dedupe.yaml (the same
runs with the validation OOD set cleaned of the images it shares with the training outliers).
Reads two `oodlab results --format csv` files, and with the store (read-only) the settings each
detector chose and its validation AUROC; prints Markdown. Standard library only.

    python3 scripts/results/dedupe_table.py AS_IS.csv DEDUPE.csv [HOME/oodlab.db]
"""

import csv
import sqlite3
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


def chosen(db, experiment, split0_seed0):
    """(entry, detector) -> ({setting: value}, validation AUROC) of the experiment's runs."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT er.entry, m.name, m.value FROM run_metrics m JOIN experiment_runs er ON er.run_id = m.run_id"
        " JOIN runs r ON r.id = m.run_id WHERE er.experiment = ? AND m.name LIKE 'detector.%'"
        + (" AND r.seed = 0 AND r.split = 0" if split0_seed0 else ""),
        (experiment,),
    ).fetchall()
    out = {}
    for entry, name, value in rows:
        parts = name.split(".")
        detector, key = parts[1], ".".join(parts[2:])
        if key in ("candidates", "train_features") or key.startswith("no_effect"):
            continue
        settings, val = out.setdefault((entry, detector), ({}, None))
        if key == "val_auroc":
            out[(entry, detector)] = (settings, value)
        else:
            settings[key] = value
    return out


def show(settings):
    return ", ".join(f"{k} {v:g}" for k, v in sorted(settings.items()))


def settings_part(db, entries):
    before, after = chosen(db, "paper-fmnist", True), chosen(db, "paper-fmnist-dedupe", False)
    pairs = [k for k in after if k[0] in entries and k in before]
    if not pairs:
        return
    same = [k for k in pairs if before[k][0] == after[k][0]]
    changed = [k for k in pairs if before[k][0] != after[k][0]]
    moves = [after[k][1] - before[k][1] for k in pairs if before[k][1] is not None and after[k][1] is not None]
    print(
        f"The settings each detector chose on the validation slice (KNN's k, ReAct's and ASH's percentiles, GEN's gamma and M, "
        f"ViM's dimension, ODIN's temperature and noise): the same in {len(same)} of {len(pairs)} (entry, detector) pairs"
        + (": " + "; ".join(f"{e}'s {d} {show(before[(e, d)][0])} → {show(after[(e, d)][0])}" for e, d in changed) if changed else "")
        + "."
    )
    if moves:
        print(
            f"Their validation AUROC (on the slice each was chosen on) moved by {min(moves):+.4f} to {max(moves):+.4f} "
            "from the full slice to the cleaned one."
        )
    print()


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
    if len(sys.argv) > 3:
        settings_part(sys.argv[3], entries)
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
