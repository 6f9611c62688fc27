"""The exhaustive search's settings against its best, within the objective's noise, and ASHA's
last-rung trials against the exhaustive trials of the same values (scripts/bench/tune-paper.sh).

    PYTHONPATH=python python3 scripts/bench/tune_paper_noise.py EXHAUSTIVE_HOME ASHA_HOME [--also LABEL=HOME:RUN_ID ...]

`--also` adds another search's chosen trial run (of another home, judged on the same images: the
paper spec's own search) to the comparison with the exhaustive best.

Every trial of both searches is judged on the same images (split 0's ID validation images against
the validation OOD slice), so two settings are compared by a *paired* bootstrap: the same
resampled images score both, and the spread of their AUROC difference is the noise of that
comparison. Each AUROC is recomputed from the trial's saved scores (scikit-learn's
`roc_auc_score`) and checked against the store's (to 1e-6: the saved scores are f32) before it is used.
"""

from __future__ import annotations

import argparse
import json
import sqlite3

import numpy as np
from sklearn.metrics import roc_auc_score

import oodlab

RESAMPLES = 2000


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """ID as the positive class, a higher MSP more ID: the store's AUROC."""
    labels = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    return roc_auc_score(labels, np.r_[id_scores, ood_scores])


def stored(con: sqlite3.Connection, run: str) -> tuple[float, float]:
    """A run's stored val-OOD MSP AUROC and ID validation accuracy."""
    return con.execute(
        """SELECT m.auroc, a.value FROM ood_metrics m JOIN run_metrics a ON a.run_id = m.run_id AND a.name = 'id_val_acc'
           WHERE m.run_id = ? AND m.ood_set = 'val_ood' AND m.score = 'msp'""",
        (run,),
    ).fetchone()


def connect(home: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{home}/oodlab.db?mode=ro", uri=True)


def trials(home: str, experiment: str) -> list[dict]:
    """Each trial of `experiment`'s search at its highest rung: values, run id, the stored
    objective (a home copied from another also holds that home's searches)."""
    con = connect(home)
    rows = con.execute(
        """SELECT trial, field_values, run_id, epochs FROM tune_trials t
           WHERE experiment = ? AND rung = (SELECT MAX(rung) FROM tune_trials u WHERE u.search = t.search AND u.trial = t.trial)
           ORDER BY trial""",
        (experiment,),
    ).fetchall()
    out = []
    for t, v, r, e in rows:
        a, acc = stored(con, r)
        out.append({"trial": t, "values": json.loads(v), "run": r, "epochs": e, "auroc": a, "id_val_acc": acc})
    return out


def label(values) -> str:
    return ", ".join(f"{k.split('.')[-1]} {v:g}" for k, v in values)


def msp(home: str, run: str, stored_auroc: float) -> tuple[np.ndarray, np.ndarray]:
    """A run's saved MSP scores (ID validation, validation OOD), checked against its stored AUROC:
    the saved scores are f32, the store's AUROC was computed before they were rounded (near an MSP
    of 1 the rounding makes ties), so the two agree to about 1e-7, not exactly."""
    s = oodlab.scores(run, home=home)
    id_msp, ood_msp = s["id_val"]["msp"].astype(np.float64), s["val_ood"]["msp"].astype(np.float64)
    assert abs(auroc(id_msp, ood_msp) - stored_auroc) < 1e-6, (run, stored_auroc)
    return id_msp, ood_msp


def main(exhaustive_home: str, asha_home: str, also: list[str]) -> None:
    exhaustive = trials(exhaustive_home, "exhaustive")
    scored = [(t, *msp(exhaustive_home, t["run"], t["auroc"])) for t in exhaustive]
    n_id, n_ood = len(scored[0][1]), len(scored[0][2])
    rng = np.random.default_rng(0)
    picks = [(rng.integers(0, n_id, n_id), rng.integers(0, n_ood, n_ood)) for _ in range(RESAMPLES)]
    best = max(scored, key=lambda x: x[0]["auroc"])
    best_boot = np.array([auroc(best[1][i], best[2][j]) for i, j in picks])

    def row(name: str, acc: float, a: float, id_msp: np.ndarray, ood_msp: np.ndarray) -> None:
        # The same images as the best's, or no pairing.
        assert (len(id_msp), len(ood_msp)) == (n_id, n_ood), f"{name}: other validation images"
        diff = best_boot - np.array([auroc(id_msp[i], ood_msp[j]) for i, j in picks])
        print(f"| {name} | {acc:.4f} | {a:.4f} | {best[0]['auroc'] - a:.4f} | {diff.std(ddof=1):.4f} | {(diff <= 0).mean():.3f} |")

    print(f"exhaustive search, every setting (val-OOD MSP AUROC; paired bootstrap over {n_id} ID and {n_ood} OOD validation images, {RESAMPLES} resamples):")
    print("| setting | ID val acc | AUROC | best − it | its std | P(it ≥ best) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t, id_msp, ood_msp in sorted(scored, key=lambda x: -x[0]["auroc"]):
        if t is best[0]:
            print(f"| {label(t['values'])} (best) | {t['id_val_acc']:.4f} | {t['auroc']:.4f} | — | — | — |")
        else:
            row(label(t["values"]), t["id_val_acc"], t["auroc"], id_msp, ood_msp)
    # Other searches' choices, on the same images: the same split and validation slice of the
    # same data (their runs share the baseline).
    for item in also:
        name, _, where = item.partition("=")
        home, _, run = where.rpartition(":")
        a, acc = stored(connect(home), run)
        row(f"{name}: run {run}", acc, a, *msp(home, run, a))
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
