"""Reference values of MixOE's TNR@95 for crates/metrics/tests/calculate_log_reference.rs.

`get_curve` below is MixOE's `utils/calculate_log.py` (Kibok Lee's, from the Mahalanobis
detector's code) with only the unused `stype` dictionary and the plotting imports taken out: the
same sorted sweep, the same tie rule (`novel[n] < known[k]`: an ID score is removed before an
equal OOD score), the same `argmin` of |tp / num_k - 0.95|. Score sets are rounded so that many
scores tie, within and across the two sets, and some sizes are unbalanced.

Each case also holds scikit-learn's `roc_curve` value, which docs/metrics.md once wrongly said MixOE
used: the test shows the two definitions differ.

Usage (numpy and scikit-learn): python3 scripts/reference/tnr_calculate_log.py > crates/metrics/tests/fixtures/calculate_log_reference.json
"""
import json

import numpy as np
from sklearn import metrics


def sklearn_tnr95(known, novel):
    """What docs/metrics.md used to claim MixOE computed: roc_curve's point nearest TPR 0.95."""
    conf = np.concatenate([known, novel])
    is_id = np.concatenate([np.ones(len(known)), np.zeros(len(novel))])
    fpr, tpr, _ = metrics.roc_curve(is_id, conf)
    return float(1 - fpr[np.argmin(np.abs(tpr - 0.95))])


def get_curve(known, novel):
    known = np.sort(known)
    novel = np.sort(novel)
    num_k = known.shape[0]
    num_n = novel.shape[0]
    tp = -np.ones([num_k + num_n + 1], dtype=int)
    fp = -np.ones([num_k + num_n + 1], dtype=int)
    tp[0], fp[0] = num_k, num_n
    k, n = 0, 0
    for l in range(num_k + num_n):
        if k == num_k:
            tp[l + 1:] = tp[l]
            fp[l + 1:] = np.arange(fp[l] - 1, -1, -1)
            break
        elif n == num_n:
            tp[l + 1:] = np.arange(tp[l] - 1, -1, -1)
            fp[l + 1:] = fp[l]
            break
        else:
            if novel[n] < known[k]:
                n += 1
                tp[l + 1] = tp[l]
                fp[l + 1] = fp[l] - 1
            else:
                k += 1
                tp[l + 1] = tp[l] - 1
                fp[l + 1] = fp[l]
    tpr95_pos = np.abs(tp / num_k - .95).argmin()
    tnr_at_tpr95 = 1. - fp[tpr95_pos] / num_n
    return tnr_at_tpr95


def main():
    rng = np.random.default_rng(20261128)
    cases = []
    for n_id, n_ood, shift, decimals in [
        (20, 20, 0.0, 0),    # heavy ties: integers
        (100, 80, 1.0, 0),   # heavy ties across the sets
        (60, 200, 0.5, 1),
        (1000, 1000, 1.5, 1),
        (1000, 800, 0.3, 2),
        (7, 5, 0.0, 0),
        (40, 1, 1.0, 1),     # unbalanced
        (3, 500, 0.5, 1),    # unbalanced the other way
        (500, 400, 6.0, 1),  # near-perfect separation with ties
        (19, 19, 0.0, 0),    # a TPR grid that misses 0.95
    ]:
        known = np.round(rng.normal(shift, 1.0, n_id), decimals)
        novel = np.round(rng.normal(0.0, 1.0, n_ood), decimals)
        cases.append({"id": known.tolist(), "ood": novel.tolist(), "tnr95": float(get_curve(known, novel)),
                      "sklearn_tnr95": sklearn_tnr95(known, novel)})
    # Every score equal: the first ID removals happen before any OOD one.
    cases.append({"id": [1.0] * 40, "ood": [1.0] * 30, "tnr95": float(get_curve(np.ones(40), np.ones(30))),
                  "sklearn_tnr95": sklearn_tnr95(np.ones(40), np.ones(30))})
    print(json.dumps({"numpy": np.__version__, "cases": cases}))


if __name__ == "__main__":
    main()
