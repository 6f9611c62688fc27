"""Converts the Animal-MNIST wheel's pickled-free raw blobs to IDX (gzipped).

Layout of animal-mnist==0.4, as documented in DESIGN.md: after gunzip, pixels are bytes
[150, 150 + 7,840,000) of animal_data_version_3.gz (10,000 images of 28x28 u8) and labels are
10,000 little-endian i64 at [146, 80,146) of animal_label_version_3.gz.
Usage: animal_to_idx.py UNPACKED_WHEEL_DIR OUT_DIR
"""
import gzip
import pathlib
import struct
import sys

N, H, W = 10_000, 28, 28


def find(root: pathlib.Path, name: str) -> pathlib.Path:
    hits = sorted(root.rglob(name))
    if not hits:
        sys.exit(f"animal_to_idx: {name} not found under {root}")
    return hits[0]


def main() -> None:
    root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    data = gzip.decompress(find(root, "animal_data_version_3.gz").read_bytes())
    labels_raw = gzip.decompress(find(root, "animal_label_version_3.gz").read_bytes())
    pixels = data[150 : 150 + N * H * W]
    labels = struct.unpack(f"<{N}q", labels_raw[146 : 146 + 8 * N])
    assert len(pixels) == N * H * W, "unexpected Animal-MNIST pixel blob size"
    assert all(0 <= l < 10 for l in labels), "unexpected Animal-MNIST labels"
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "train-images-idx3-ubyte.gz", "wb", compresslevel=9) as f:
        f.write(struct.pack(">IIII", 0x803, N, H, W) + pixels)
    with gzip.open(out / "train-labels-idx1-ubyte.gz", "wb", compresslevel=9) as f:
        f.write(struct.pack(">II", 0x801, N) + bytes(labels))


if __name__ == "__main__":
    main()
