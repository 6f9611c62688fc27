#!/usr/bin/env python3
"""Recomputes a finished run's post-hoc detector scores from its saved features in NumPy and
scikit-learn, and compares them with the scores oodlab saved (`scores.safetensors`) and the AUROC
it recorded: the features file is what a researcher reads from Python, and this shows it is
enough to reproduce every detector. Formulas as OpenOOD v1.5's postprocessors, with oodlab's
default hyperparameters (docs/detectors.md); per-sample scores must agree to 1e-4 relative
(features saved as f32).

    /work/venv-torch/bin/python scripts/reference/check_run_features.py HOME/runs/EXPERIMENT/RUN_ID
"""
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from scipy.special import logsumexp, softmax
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import roc_auc_score


def main():
    run = Path(sys.argv[1])
    f = load_file(run / "features.safetensors")
    s = load_file(run / "scores.safetensors")
    W, b = f["fc.weight"].astype(np.float64), f["fc.bias"].astype(np.float64)
    train = f["id_train.features"].astype(np.float64)
    labels = f["id_train.labels"].astype(np.int64)
    sets = [k[: -len(".features")] for k in f if k.endswith(".features") and not k.startswith("id_train")]
    sets = ["id"] + sorted(x for x in sets if x != "id")
    feats = {n: f[f"{n}.features"].astype(np.float64) for n in sets}
    logits = {n: f[f"{n}.logits"].astype(np.float64) for n in sets}
    classes, dim = W.shape

    def energy(x):
        return logsumexp(x @ W.T + b, axis=1)

    def gen(z, gamma=0.1, m=100):
        p = np.sort(softmax(z, axis=1), axis=1)[:, -min(m, z.shape[1]):]
        return -np.sum(p ** gamma * (1 - p) ** gamma, axis=1)

    normed = train / np.linalg.norm(train, axis=1, keepdims=True)

    def knn(x, k=50):
        q = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = np.sum(q * q, 1)[:, None] - 2 * q @ normed.T + np.sum(normed * normed, 1)[None, :]
        return -np.sort(d, axis=1)[:, k - 1]

    threshold = np.percentile(train.flatten(), 90)

    def ash_b(x, p=90):
        k = x.shape[1] - int(np.round(x.shape[1] * p / 100.0))
        out = np.zeros_like(x)
        for i, row in enumerate(x):
            keep = np.argsort(-row, kind="stable")[:k]
            out[i, keep] = row.sum() / k
        return energy(out)

    means = np.stack([train[labels == c].mean(0) for c in range(classes)])
    prec = EmpiricalCovariance(assume_centered=False).fit(train - means[labels]).precision_
    whole = EmpiricalCovariance(assume_centered=False).fit(train)
    prec0, mean0 = whole.precision_, whole.location_

    def maha(x):
        return np.stack([-np.einsum("ij,jk,ik->i", x - m, prec, x - m) for m in means], 1)

    def rmds(x):
        d0 = np.einsum("ij,jk,ik->i", x - mean0, prec0, x - mean0)
        return np.max(maha(x) + d0[:, None], 1)

    origin = -np.linalg.pinv(W) @ b
    vdim = max(dim // 2, 1)
    cov = EmpiricalCovariance(assume_centered=True).fit(train - origin).covariance_
    val, vec = np.linalg.eigh(cov)
    ns = vec[:, np.argsort(val)[::-1][vdim:]]
    alpha = (train @ W.T + b).max(1).mean() / np.linalg.norm((train - origin) @ ns, axis=1).mean()

    def vim(x):
        return energy(x) - alpha * np.linalg.norm((x - origin) @ ns, axis=1)

    detectors = {
        "gen": lambda n: gen(logits[n]),
        "knn": lambda n: knn(feats[n]),
        "react": lambda n: energy(np.minimum(feats[n], threshold)),
        "ash": lambda n: ash_b(feats[n]),
        "mahalanobis": lambda n: np.max(maha(feats[n]), 1),
        "rmds": lambda n: rmds(feats[n]),
        "vim": lambda n: vim(feats[n]),
    }
    worst = 0.0
    for name, fn in detectors.items():
        if f"id.{name}" not in s:
            continue
        ref = {n: fn(n) for n in sets}
        for n in sets:
            got = s[f"{n}.{name}"].astype(np.float64)
            err = np.max(np.abs(got - ref[n]) / np.maximum(1.0, np.abs(ref[n])))
            worst = max(worst, err)
        aurocs = []
        for n in sets[1:]:
            y = np.r_[np.ones(len(ref["id"])), np.zeros(len(ref[n]))]
            aurocs.append(f"{n} {roc_auc_score(y, np.r_[ref['id'], ref[n]]):.4f}")
        print(f"{name:12s} AUROC {', '.join(aurocs)}")
    print(f"largest relative difference from oodlab's saved scores: {worst:.2e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
