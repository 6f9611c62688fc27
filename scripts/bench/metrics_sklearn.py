"""Writes N seeded scores (N/2 ID, N/2 OOD, rounded to 4 decimals so that many tie) as
little-endian f64 files, and times the references computing the same five metrics as oodlab:
OpenOOD v1.5's scikit-learn calls (scripts/reference/metrics_sklearn.py) and MixOE's TNR@95
(its calculate_log.py sweep, scripts/reference/tnr_calculate_log.py). Prints one line like
bench_metrics.
Usage: metrics_sklearn.py OUT_DIR REPEATS [N]
"""
import pathlib
import sys
import time

import numpy as np

# The same references as the tests' values (crates/metrics/tests/fixtures).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "reference"))
from metrics_sklearn import openood  # noqa: E402
from tnr_calculate_log import get_curve  # noqa: E402


def main():
    out, repeats = sys.argv[1], int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    rng = np.random.default_rng(20261126)
    id_scores = np.round(rng.normal(1.0, 1.0, n // 2), 4)
    ood_scores = np.round(rng.normal(0.0, 1.0, n - n // 2), 4)
    id_scores.astype("<f8").tofile(f"{out}/id.bin")
    ood_scores.astype("<f8").tofile(f"{out}/ood.bin")
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        m = openood(id_scores, ood_scores)
        # MixOE's TNR@95 is the fifth metric; scikit-learn has no call for it.
        m["tnr95"] = get_curve(id_scores, ood_scores)
        best = min(best, time.perf_counter() - t)
    print(f"sklearn n={n} auroc={m['auroc']:.12f} fpr95={m['fpr95']:.12f} aupr_in={m['aupr_in']:.12f} "
          f"aupr_out={m['aupr_out']:.12f} tnr95={m['tnr95']:.12f} best_seconds={best:.6f}")


if __name__ == "__main__":
    main()
