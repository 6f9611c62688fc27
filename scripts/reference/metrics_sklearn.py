"""Reference values for oodlab-metrics, computed with scikit-learn as OpenOOD v1.5 does.

OpenOOD v1.5 (openood/evaluators/metrics.py) treats OOD as positive and uses -score:
  fpr, tpr, _ = roc_curve(ood_indicator, -conf); fpr95 = fpr[argmax(tpr >= 0.95)]
  auroc = auc(fpr, tpr)
  aupr_in = auc(*precision_recall_curve(1 - ood_indicator, conf)[1::-1])
  aupr_out = auc(*precision_recall_curve(ood_indicator, -conf)[1::-1])
One deliberate difference: roc_curve(..., drop_intermediate=False). sklearn's default drops
collinear ROC points, which can move the "first threshold with TPR >= 0.95" to a later point;
DESIGN.md defines FPR@95 at the first threshold, so the reference keeps every threshold.

Score sets are rounded so that many scores tie, within and across the ID and OOD sets.
Usage: python3 scripts/reference/metrics_sklearn.py > crates/metrics/tests/fixtures/sklearn_reference.json
"""
import json

import numpy as np
import sklearn
from sklearn import metrics


def openood(id_scores, ood_scores):
    conf = np.concatenate([id_scores, ood_scores])
    ood = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    fpr, tpr, _ = metrics.roc_curve(ood, -conf, drop_intermediate=False)
    p_in, r_in, _ = metrics.precision_recall_curve(1 - ood, conf)
    p_out, r_out, _ = metrics.precision_recall_curve(ood, -conf)
    # MixOE's TNR@95 is not scikit-learn's: scripts/reference/tnr_calculate_log.py.
    return {
        "auroc": metrics.auc(fpr, tpr),
        "fpr95": float(fpr[np.argmax(tpr >= 0.95)]),
        "aupr_in": metrics.auc(r_in, p_in),
        "aupr_out": metrics.auc(r_out, p_out),
    }


def main():
    rng = np.random.default_rng(20261126)
    cases = []
    for n_id, n_ood, shift, decimals in [
        (50, 40, 1.0, 1),
        (200, 300, 0.5, 1),
        (1000, 800, 0.3, 2),
        (7, 5, 0.0, 0),  # heavy ties: scores rounded to integers
        (500, 500, 2.0, 0),  # heavy ties
        (30, 1, 1.0, 1),  # unbalanced
        (5000, 20, 0.8, 1),  # unbalanced
        (15, 3000, 0.5, 2),  # unbalanced the other way
        (400, 300, 8.0, 2),  # near-perfect separation
        (300, 300, 6.0, 1),  # near-perfect separation with ties
    ]:
        id_scores = np.round(rng.normal(shift, 1.0, n_id), decimals)
        ood_scores = np.round(rng.normal(0.0, 1.0, n_ood), decimals)
        cases.append({"id": id_scores.tolist(), "ood": ood_scores.tolist(), **openood(id_scores, ood_scores)})
    print(json.dumps({"sklearn": sklearn.__version__, "cases": cases}))


if __name__ == "__main__":
    main()
