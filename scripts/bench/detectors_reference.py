#!/usr/bin/env python3
"""The reference side of scripts/bench/detectors.sh: writes the benchmark's features (seeded) to
DIR as raw little-endian f32/u32 files, times the same computations as crates/detectors in the
reference libraries — KNN with faiss's exact flat index (or NumPy when faiss is missing), the
Mahalanobis/RMDS fit with scikit-learn's EmpiricalCovariance and the scoring in NumPy, ViM as
OpenOOD's vim_postprocessor.py (with `eigh`) — and writes their scores to DIR for the value check.

    python3 scripts/bench/detectors_reference.py DIR [--train 50000] [--queries 20000] [--dim 512]
"""
import argparse
import json
import pathlib
import time

import numpy as np
from scipy.special import logsumexp
from sklearn.covariance import EmpiricalCovariance

p = argparse.ArgumentParser()
p.add_argument("dir")
p.add_argument("--train", type=int, default=50000)
p.add_argument("--queries", type=int, default=20000)
p.add_argument("--dim", type=int, default=512)
p.add_argument("--classes", type=int, default=10)
p.add_argument("--k", type=int, default=50)
p.add_argument("--vim-dim", type=int, default=256)
a = p.parse_args()
out = pathlib.Path(a.dir)
out.mkdir(parents=True, exist_ok=True)

rng = np.random.default_rng(0)
C, D = a.classes, a.dim
centres = rng.normal(0, 1, (C, D))
labels = rng.integers(0, C, a.train).astype(np.uint32)
# ReLU features around class centres, as a network's penultimate layer.
train = np.maximum(centres[labels] + rng.normal(0, 1, (a.train, D)), 0).astype(np.float32)
q_labels = rng.integers(0, C, a.queries)
queries = np.maximum(centres[q_labels] + rng.normal(0, 1.3, (a.queries, D)), 0).astype(np.float32)
W = rng.normal(0, 0.05, (C, D)).astype(np.float32)
b = rng.normal(0, 0.1, C).astype(np.float32)
for name, x in [("train", train), ("labels", labels), ("queries", queries), ("weight", W), ("bias", b)]:
    x.tofile(out / f"{name}.bin")
times = {}


def timed(name, f):
    t0 = time.perf_counter()
    r = f()
    times[name] = time.perf_counter() - t0
    return r


def knn():
    t = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    try:
        import faiss

        index = faiss.IndexFlatL2(D)
        index.add(t)
        d, _ = index.search(q, a.k)
        return -d[:, -1].astype(np.float64)
    except ImportError:
        res = []
        for s in range(0, len(q), 1024):
            d = 2 - 2 * q[s : s + 1024] @ t.T
            res.append(-np.partition(d, a.k - 1, axis=1)[:, a.k - 1])
        return np.concatenate(res).astype(np.float64)


def gaussians():
    t64 = train.astype(np.float64)
    means = np.stack([t64[labels == c].mean(0) for c in range(C)])
    prec = EmpiricalCovariance(assume_centered=False).fit(t64 - means[labels]).precision_
    whole = t64.mean(0)
    whole_prec = EmpiricalCovariance(assume_centered=False).fit(t64 - whole).precision_
    q64 = queries.astype(np.float64)
    tq = q64 - whole
    # The quadratic forms as matrix products (OpenOOD's torch code forms an n x n matrix and
    # keeps its diagonal, which would not fit at this size).
    quad = lambda x, p: ((x @ p) * x).sum(1)
    background = -quad(tq, whole_prec)
    cls = np.stack([-quad(q64 - m, prec) for m in means], 1)
    return cls.max(1), (cls - background[:, None]).max(1)


def vim():
    t64, q64, W64, b64 = (x.astype(np.float64) for x in (train, queries, W, b))
    u = -np.matmul(np.linalg.pinv(W64), b64)
    ec = EmpiricalCovariance(assume_centered=True)
    ec.fit(t64 - u)
    # eigh where OpenOOD calls eig: the covariance is symmetric, and eigh is the faster of the two.
    eig_vals, eigen_vectors = np.linalg.eigh(ec.covariance_)
    NS = np.ascontiguousarray((eigen_vectors.T[np.argsort(eig_vals * -1)[a.vim_dim :]]).T)
    vlogit_train = np.linalg.norm(np.matmul(t64 - u, NS), axis=-1)
    alpha = (t64 @ W64.T + b64).max(axis=-1).mean() / vlogit_train.mean()
    vlogit = np.linalg.norm(np.matmul(q64 - u, NS), axis=-1) * alpha
    return -vlogit + logsumexp(q64 @ W64.T + b64, axis=-1)


scores = {
    "knn": timed("knn", knn),
    "mahalanobis+rmds": None,
    "vim": timed("vim", vim),
}
scores["mahalanobis"], scores["rmds"] = timed("mahalanobis+rmds", gaussians)
del scores["mahalanobis+rmds"]
for name, s in scores.items():
    np.asarray(s, dtype=np.float64).tofile(out / f"ref_{name}.bin")
try:
    import faiss  # noqa: F401

    knn_lib = "faiss " + faiss.__version__
except ImportError:
    knn_lib = "numpy"
meta = {"train": a.train, "queries": a.queries, "dim": D, "classes": C, "k": a.k, "vim_dim": a.vim_dim, "times": times,
        "libraries": {"numpy": np.__version__, "knn": knn_lib}}
(out / "meta.json").write_text(json.dumps(meta))
print(json.dumps(meta))
