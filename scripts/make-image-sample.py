#!/usr/bin/env python3
"""Writes datasets/sample/images/ from the committed IDX sample and the scikit-image photos
(scripts/fetch-data.sh puts them in datasets/full/skimage-photos/), deterministically, with the
standard library only:

  fashion/{train,test}/<n>-<class>/<i>.png   Fashion-MNIST, 30 train and 20 test images per class
  mnist/test/<i>.png, mnist/test.txt         100 MNIST test digits and a list file (`path label`)
  photos/                                    four scikit-image photos, copied as they are

It is the data of experiments/examples/image-folder.yaml."""
import gzip
import os
import shutil
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "datasets", "sample")
OUT = os.path.join(SAMPLE, "images")
PHOTOS = ["rocket.jpg", "chelsea.png", "camera.png", "coffee.png"]
FASHION = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def idx(path):
    data = gzip.open(path).read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return dims, data[4 + 4 * ndim :]


def png(path, w, h, pixels):
    """An 8-bit greyscale PNG, no filtering, zlib level 9."""
    raw = b"".join(b"\x00" + pixels[y * w : (y + 1) * w] for y in range(h))
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def first_per_class(labels, per_class):
    taken = {}
    for i, label in enumerate(labels):
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            yield i


def main():
    photos = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "datasets", "full", "skimage-photos")
    shutil.rmtree(OUT, ignore_errors=True)
    for part, stem, per_class in [("train", "train", 30), ("test", "t10k", 20)]:
        (n, h, w), images = idx(os.path.join(SAMPLE, "fashion-mnist", f"{stem}-images-idx3-ubyte.gz"))
        _, labels = idx(os.path.join(SAMPLE, "fashion-mnist", f"{stem}-labels-idx1-ubyte.gz"))
        for i in first_per_class(labels, per_class):
            folder = os.path.join(OUT, "fashion", part, f"{labels[i]}-{FASHION[labels[i]]}")
            os.makedirs(folder, exist_ok=True)
            png(os.path.join(folder, f"{i:04d}.png"), w, h, images[i * h * w : (i + 1) * h * w])
    (n, h, w), images = idx(os.path.join(SAMPLE, "mnist", "t10k-images-idx3-ubyte.gz"))
    _, labels = idx(os.path.join(SAMPLE, "mnist", "t10k-labels-idx1-ubyte.gz"))
    os.makedirs(os.path.join(OUT, "mnist", "test"))
    lines = []
    for i in range(100):
        png(os.path.join(OUT, "mnist", "test", f"{i:04d}.png"), w, h, images[i * h * w : (i + 1) * h * w])
        lines.append(f"test/{i:04d}.png {labels[i]}\n")
    with open(os.path.join(OUT, "mnist", "test.txt"), "w") as f:
        f.writelines(lines)
    os.makedirs(os.path.join(OUT, "photos"))
    for name in PHOTOS:
        shutil.copyfile(os.path.join(photos, name), os.path.join(OUT, "photos", name))


if __name__ == "__main__":
    main()
