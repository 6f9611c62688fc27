"""The exhaustive search's settings against its best, within the objective's noise, and ASHA's
last-rung trials against the exhaustive trials of the same values (scripts/bench/tune-paper.sh).

    PYTHONPATH=python python3 scripts/bench/tune_paper_noise.py EXHAUSTIVE_HOME ASHA_HOME [--also LABEL=HOME:RUN_ID ...]

`--also` adds another search's chosen trial run (of another home, judged on the same images: the
paper spec's own search) to the comparison with the exhaustive best.

Every trial of both searches is judged on the same images (split 0's ID validation images against
the validation OOD slice), so two settings are compared by a *paired* bootstrap: the same
resampled images score both, and the spread of their AUROC difference is the noise of that
comparison. Each AUROC is recomputed from the trial's saved scores (Mann–Whitney, ties counted
half) and checked against the store's (to 1e-6: the saved scores are f32) before it is used.
"""

from __future__ import annotations

import argparse
import json
import sqlite3

import numpy as np

import oodlab

RESAMPLES = 2000


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """P(an ID image scores above an OOD image), ties counted half: ID is the positive class and
    a higher MSP means more ID, as the store's AUROC."""
    both = np.concatenate([id_scores, ood_scores])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_ = both[order]
    # Average ranks over ties (1-based).
    starts = np.flatnonzero(np.r_[True, sorted_[1:] != sorted_[:-1]])
    ends = np.r_[starts[1:], len(both)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    n_id, n_ood = len(id_scores), len(ood_scores)
    return (ranks[:n_id].sum() - n_id * (n_id + 1) / 2.0) / (n_id * n_ood)


def trials(home: str, experiment: str) -> list[dict]:
    """Each trial of `experiment`'s search at its highest rung: values, run id, the stored
    objective (a home copied from another also holds that home's searches)."""
    con = sqlite3.connect(f"file:{home}/oodlab.db?mode=ro", uri=True)
    rows = con.execute(
        """SELECT t.trial, t.field_values, t.run_id, t.epochs, m.auroc, a.value
           FROM tune_trials t
           JOIN ood_metrics m ON m.run_id = t.run_id AND m.ood_set = 'val_ood' AND m.score = 'msp'
           JOIN run_metrics a ON a.run_id = t.run_id AND a.name = 'id_val_acc'
           WHERE t.experiment = ?
             AND t.rung = (SELECT MAX(rung) FROM tune_trials u WHERE u.search = t.search AND u.trial = t.trial)
           ORDER BY t.trial""",
        (experiment,),
    ).fetchall()
    return [
        {"trial": t, "values": json.loads(v), "run": r, "epochs": e, "auroc": a, "id_val_acc": acc}
        for t, v, r, e, a, acc in rows
    ]


def label(values) -> str:
    return ", ".join(f"{k.split('.')[-1]} {v:g}" for k, v in values)


def stored(home: str, run: str) -> tuple[float, float]:
    """A run's stored val-OOD MSP AUROC and ID validation accuracy."""
    con = sqlite3.connect(f"file:{home}/oodlab.db?mode=ro", uri=True)
    (a,) = con.execute(
        "SELECT auroc FROM ood_metrics WHERE run_id = ? AND ood_set = 'val_ood' AND score = 'msp'", (run,)
    ).fetchone()
    (acc,) = con.execute("SELECT value FROM run_metrics WHERE run_id = ? AND name = 'id_val_acc'", (run,)).fetchone()
    return a, acc


def main(exhaustive_home: str, asha_home: str, also: list[str]) -> None:
    exhaustive = trials(exhaustive_home, "exhaustive")
    scored = []
    for t in exhaustive:
        s = oodlab.scores(t["run"], home=exhaustive_home)
        id_msp, ood_msp = s["id_val"]["msp"].astype(np.float64), s["val_ood"]["msp"].astype(np.float64)
        # The saved scores are f32, the store's AUROC was computed before they were rounded:
        # near an MSP of 1 the rounding makes ties, so the two agree to about 1e-7, not exactly.
        mine = auroc(id_msp, ood_msp)
        assert abs(mine - t["auroc"]) < 1e-6, (t, mine)
        scored.append((t, id_msp, ood_msp))
    n_id, n_ood = len(scored[0][1]), len(scored[0][2])
    rng = np.random.default_rng(0)
    picks = [(rng.integers(0, n_id, n_id), rng.integers(0, n_ood, n_ood)) for _ in range(RESAMPLES)]
    best = max(scored, key=lambda x: x[0]["auroc"])
    best_boot = np.array([auroc(best[1][i], best[2][j]) for i, j in picks])
    best_scores = oodlab.scores(best[0]["run"], home=exhaustive_home)
    print(f"exhaustive search, every setting (val-OOD MSP AUROC; paired bootstrap over {n_id} ID and {n_ood} OOD validation images, {RESAMPLES} resamples):")
    print("| setting | ID val acc | AUROC | best − it | its std | P(it ≥ best) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t, id_msp, ood_msp in sorted(scored, key=lambda x: -x[0]["auroc"]):
        if t is best[0]:
            print(f"| {label(t['values'])} (best) | {t['id_val_acc']:.4f} | {t['auroc']:.4f} | — | — | — |")
            continue
        boot = np.array([auroc(id_msp[i], ood_msp[j]) for i, j in picks])
        diff = best_boot - boot
        print(
            f"| {label(t['values'])} | {t['id_val_acc']:.4f} | {t['auroc']:.4f} | {best[0]['auroc'] - t['auroc']:.4f} "
            f"| {diff.std(ddof=1):.4f} | {(diff <= 0).mean():.3f} |"
        )
    # Other searches' choices, on the same images: the same split and validation slice of the
    # same data (their runs share the baseline), so the same counts in the same order.
    for item in also:
        name, _, where = item.partition("=")
        home, _, run = where.rpartition(":")
        s = oodlab.scores(run, home=home)
        for part in ("id_val", "val_ood"):
            assert len(s[part]["msp"]) == len(best_scores[part]["msp"]), f"{name}: other {part} images"
        id_msp, ood_msp = s["id_val"]["msp"].astype(np.float64), s["val_ood"]["msp"].astype(np.float64)
        a, acc = stored(home, run)
        assert abs(auroc(id_msp, ood_msp) - a) < 1e-6, (name, a)
        diff = best_boot - np.array([auroc(id_msp[i], ood_msp[j]) for i, j in picks])
        print(f"| {name}: run {run} | {acc:.4f} | {a:.4f} | {best[0]['auroc'] - a:.4f} | {diff.std(ddof=1):.4f} | {(diff <= 0).mean():.3f} |")
    # ASHA's trials that reached the full 3 epochs went on from their 1-epoch checkpoints; each
    # should equal the exhaustive trial of its values, which trained 3 epochs at once.
    by_values = {json.dumps(t["values"]): t for t, _, _ in scored}
    full = max(t["epochs"] for t in exhaustive)
    promoted = [t for t in trials(asha_home, "asha") if t["epochs"] == full]
    same = 0
    for t in promoted:
        other = by_values[json.dumps(t["values"])]
        a = oodlab.scores(t["run"], home=asha_home)
        b = oodlab.scores(other["run"], home=exhaustive_home)
        equal = all(
            np.array_equal(a[part][name], b[part][name]) for part in ("id_val", "val_ood") for name in a[part]
        ) and t["auroc"] == other["auroc"] and t["id_val_acc"] == other["id_val_acc"]
        same += equal
        print(f"ASHA trial {t['trial']} ({label(t['values'])}, promoted to {full} epochs): "
              f"AUROC {t['auroc']!r} vs exhaustive {other['auroc']!r}: {'bit-identical scores' if equal else 'DIFFERENT'}")
    print(f"{same} of {len(promoted)} promoted ASHA trials bit-identical to the exhaustive trial of the same values")


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("exhaustive_home")
    args.add_argument("asha_home")
    args.add_argument("--also", action="append", default=[], metavar="LABEL=HOME:RUN_ID")
    a = args.parse_args()
    main(a.exhaustive_home, a.asha_home, a.also)
