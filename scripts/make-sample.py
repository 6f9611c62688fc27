"""Makes the committed sample under datasets/sample/ from the full sets of scripts/fetch-data.sh.

Deterministic: the first N images of each class in file order. Writes gzipped IDX.
Usage: python3 scripts/make-sample.py [FULL_DIR] [OUT_DIR]
"""
import gzip
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent.parent
FULL = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "datasets/full"
OUT = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "datasets/sample"

# (source set, source file stem, output set, per-class count)
PLAN = [
    ("fashion-mnist", "train", "fashion-mnist", 1000),
    ("fashion-mnist", "t10k", "fashion-mnist", 100),
    ("mnist", "t10k", "mnist", 100),
    ("animal-mnist", "train", "animal-mnist", 1000),
]


def read_idx(path: pathlib.Path) -> tuple[tuple[int, ...], bytes]:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim :]


def write_idx(path: pathlib.Path, code: int, dims: tuple[int, ...], body: bytes) -> None:
    header = struct.pack(">I", (code << 8) | len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    # mtime=0 keeps the committed bytes identical from one run of this script to the next.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(header + body)


def main() -> None:
    for src, stem, dst, per_class in PLAN:
        (dims, pixels) = read_idx(FULL / src / f"{stem}-images-idx3-ubyte.gz")
        (_, labels) = read_idx(FULL / src / f"{stem}-labels-idx1-ubyte.gz")
        size = dims[1] * dims[2]
        taken: dict[int, int] = {}
        keep = []
        for i, label in enumerate(labels):
            if taken.get(label, 0) < per_class:
                taken[label] = taken.get(label, 0) + 1
                keep.append(i)
        out = OUT / dst
        out.mkdir(parents=True, exist_ok=True)
        write_idx(out / f"{stem}-images-idx3-ubyte.gz", 0x08, (len(keep), dims[1], dims[2]),
                  b"".join(pixels[i * size : (i + 1) * size] for i in keep))
        write_idx(out / f"{stem}-labels-idx1-ubyte.gz", 0x08, (len(keep),), bytes(labels[i] for i in keep))
        print(f"{dst}/{stem}: {len(keep)} images, {len(taken)} classes")


if __name__ == "__main__":
    main()
