"""Exact duplicates within each IDX image file of the committed sample, counted independently of
oodlab (hashlib over the raw bytes of each image): the numbers crates/cli/tests/audit.rs asserts.

    python3 scripts/reference/audit_exact.py
prints, per file, its images and its pairs of byte-identical images. Measured:
    animal-mnist/train 10000 images, 284 pairs (the pool `oodlab audit` splits into outliers and
    val_ood: its diagonal and cross cells add up to these)
    fashion-mnist/train 10000 images, 0 pairs; fashion-mnist/t10k 1000, 0; mnist/t10k 1000, 0
"""
import collections
import gzip
import hashlib
import pathlib

root = pathlib.Path(__file__).resolve().parents[2] / "datasets" / "sample"
for name in ["animal-mnist/train", "fashion-mnist/train", "fashion-mnist/t10k", "mnist/t10k"]:
    folder, part = name.split("/")
    raw = gzip.open(root / folder / f"{part}-images-idx3-ubyte.gz").read()
    n, h, w = (int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(3))
    size = h * w
    counts = collections.Counter(hashlib.sha256(raw[16 + i * size : 16 + (i + 1) * size]).digest() for i in range(n))
    pairs = sum(c * (c - 1) // 2 for c in counts.values())
    print(f"{name} {n} images, {pairs} pairs")
