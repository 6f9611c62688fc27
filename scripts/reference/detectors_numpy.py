#!/usr/bin/env python3
"""Reference scores of the post-hoc detectors (crates/detectors), ported line by line from
OpenOOD v1.5's postprocessors (Jingkang50/OpenOOD, openood/postprocessors/{gen,knn,react,vim,
mds,rmds}_postprocessor.py and openood/networks/ash_net.py) to NumPy, scikit-learn and SciPy, in
float64 from float32 inputs. Writes crates/detectors/tests/fixtures/detectors.json.

The features have known structure: three classes of 20 training features (Gaussians around
different means), ReLU-like coordinates (ties at 0, for ASH), one coordinate 0 everywhere (a
rank-deficient covariance), queries near the classes and far from them (those also along the
constant coordinate); k larger than a class.

    /path/to/venv/bin/python scripts/reference/detectors_numpy.py
"""
import json
import pathlib

import numpy as np
from scipy.special import logsumexp, softmax
from sklearn.covariance import EmpiricalCovariance

rng = np.random.default_rng(19)
C, D, PER = 3, 6, 20
means = rng.normal(0, 2, (C, D))
means[:, 5] = 0
train = np.concatenate([means[c] + rng.normal(0, 1, (PER, D)) for c in range(C)])
labels = np.repeat(np.arange(C), PER)
queries = np.concatenate([means[labels[:12]] + rng.normal(0, 1, (12, D)), rng.normal(0, 4, (13, D))])
for x in (train, queries):
    x[:, :3] = np.maximum(x[:, :3], 0)  # ReLU-like: ties at 0
# A coordinate that never varies in training (a singular covariance); the far queries move along
# it, a direction the pseudo-inverse ignores.
train[:, 5] = 0
queries[:12, 5] = 0
train, queries = train.astype(np.float32), queries.astype(np.float32)
W = rng.normal(0, 0.5, (C, D)).astype(np.float32)
b = rng.normal(0, 0.5, C).astype(np.float32)

t64, q64, W64, b64 = (a.astype(np.float64) for a in (train, queries, W, b))
logits = (q64 @ W64.T + b64).astype(np.float32)
l64 = logits.astype(np.float64)
expected = {}


def gen(gamma, M):  # gen_postprocessor.py: generalized_entropy
    probs = softmax(l64, axis=1)
    s = np.sort(probs, axis=1)[:, -M:]
    return -np.sum(s**gamma * (1 - s) ** gamma, axis=1)


expected["gen_0.1_2"] = gen(0.1, 2)
expected["gen_0.5_100"] = gen(0.5, 100)


def knn(k):  # knn_postprocessor.py: faiss IndexFlatL2 (squared L2) on normalized features
    norm = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    t, q = norm(t64), norm(q64)
    d = ((q[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    return -np.sort(d, axis=1)[:, k - 1]


for k in (1, 5, 25):
    expected[f"knn_{k}"] = knn(k)


def react(p):  # react_postprocessor.py: threshold at a percentile of ID activations, energy
    c = np.percentile(t64.flatten(), p)
    return logsumexp(np.minimum(q64, c) @ W64.T + b64, axis=1), c


expected["react_90"], expected["react_90_threshold"] = react(90)


def ash(variant, p):  # networks/ash_net.py: ash_b / ash_p / ash_s on each feature vector
    out = []
    n = D
    k = n - int(np.round(n * p / 100.0))
    for x in q64:
        i = np.argsort(-x, kind="stable")[:k]  # ties: lowest index first
        y = np.zeros(n)
        if variant == "b":
            y[i] = x.sum() / k
        elif variant == "p":
            y[i] = x[i]
        else:
            y[i] = x[i]
            y = y * np.exp(x.sum() / y.sum())
        y = y.astype(np.float32).astype(np.float64)  # the shaped features are f32, as in the network
        out.append(logsumexp(y @ W64.T + b64))
    return np.array(out)


for v in "bps":
    for p in (65, 75):
        expected[f"ash_{v}_{p}"] = ash(v, p)


def gaussians():  # mds_postprocessor.py / rmds_postprocessor.py
    class_mean, centered = [], []
    for c in range(C):
        s = t64[labels == c]
        class_mean.append(s.mean(0))
        centered.append(s - s.mean(0))
    prec = EmpiricalCovariance(assume_centered=False).fit(np.concatenate(centered)).precision_
    whole_mean = t64.mean(0)
    whole_prec = EmpiricalCovariance(assume_centered=False).fit(t64 - whole_mean).precision_
    t = q64 - whole_mean
    background = -np.einsum("ij,jk,ik->i", t, whole_prec, t)
    cls = np.stack([-np.einsum("ij,jk,ik->i", q64 - m, prec, q64 - m) for m in class_mean], 1)
    return cls.max(1), (cls - background[:, None]).max(1)


expected["mahalanobis"], expected["rmds"] = gaussians()


def vim(dim):  # vim_postprocessor.py
    u = -np.matmul(np.linalg.pinv(W64), b64)
    ec = EmpiricalCovariance(assume_centered=True)
    ec.fit(t64 - u)
    eig_vals, eigen_vectors = np.linalg.eig(ec.covariance_)
    NS = np.ascontiguousarray((eigen_vectors.T[np.argsort(eig_vals * -1)[dim:]]).T)
    vlogit_train = np.linalg.norm(np.matmul(t64 - u, NS), axis=-1)
    alpha = (t64 @ W64.T + b64).max(axis=-1).mean() / vlogit_train.mean()
    vlogit = np.linalg.norm(np.matmul(q64 - u, NS), axis=-1) * alpha
    return -vlogit + logsumexp(q64 @ W64.T + b64, axis=-1), alpha


for dim in (2, 4):
    expected[f"vim_{dim}"], expected[f"vim_{dim}_alpha"] = vim(dim)

out = {
    "classes": C,
    "dim": D,
    "train": train.flatten().tolist(),
    "labels": labels.tolist(),
    "queries": queries.flatten().tolist(),
    "logits": logits.flatten().tolist(),
    "weight": W.flatten().tolist(),
    "bias": b.tolist(),
    "expected": {k: np.atleast_1d(v).tolist() for k, v in expected.items()},
}
path = pathlib.Path(__file__).resolve().parents[2] / "crates/detectors/tests/fixtures/detectors.json"
path.write_text(json.dumps(out, indent=None) + "\n")
print(f"wrote {path}")
