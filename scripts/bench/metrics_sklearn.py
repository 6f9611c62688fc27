"""Writes 1,000,000 seeded scores (500,000 ID, 500,000 OOD, rounded to 4 decimals so that many
tie) as little-endian f64 files, and times scikit-learn computing the same five metrics as
oodlab (OpenOOD v1.5's calls, plus MixOE's TNR@95). Prints one line like bench_metrics.
Usage: metrics_sklearn.py OUT_DIR REPEATS
"""
import pathlib
import sys
import time

import numpy as np

# The same five metrics as the reference values of the tests (OpenOOD v1.5's calls + TNR@95).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "reference"))
from metrics_sklearn import openood  # noqa: E402


def main():
    out, repeats = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(20261126)
    id_scores = np.round(rng.normal(1.0, 1.0, 500_000), 4)
    ood_scores = np.round(rng.normal(0.0, 1.0, 500_000), 4)
    id_scores.astype("<f8").tofile(f"{out}/id.bin")
    ood_scores.astype("<f8").tofile(f"{out}/ood.bin")
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        m = openood(id_scores, ood_scores)
        best = min(best, time.perf_counter() - t)
    print(f"sklearn n=1000000 auroc={m['auroc']:.12f} fpr95={m['fpr95']:.12f} aupr_in={m['aupr_in']:.12f} "
          f"aupr_out={m['aupr_out']:.12f} tnr95={m['tnr95']:.12f} best_seconds={best:.6f}")


if __name__ == "__main__":
    main()
