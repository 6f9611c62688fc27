"""Writes an image folder of JPEG files (class folders 0..3), seeded windows of the committed
scikit-image photos (datasets/sample/images/photos), for timing a training epoch with the loader
on a machine without a Rust toolchain (scripts/gpu-check.sh; the Rust example
crates/data/examples/photo_folder.rs writes the same kind of folder for scripts/bench/loader.sh).

    python scripts/bench/jpeg_folder.py OUT COUNT SIZE
"""
import os
import random
import sys
from concurrent.futures import ProcessPoolExecutor

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "..", "..", "datasets", "sample", "images", "photos")


def write(job):
    out, index, size, names = job
    rng = random.Random(index)
    cls = index % len(names)
    photo = Image.open(os.path.join(PHOTOS, names[cls])).convert("RGB")
    w, h = photo.size
    side = rng.randint(min(w, h) // 2, min(w, h))
    x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    window = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
    if rng.random() < 0.5:
        window = window.transpose(Image.FLIP_LEFT_RIGHT)
    window.save(os.path.join(out, str(cls), f"{index:06d}.jpg"), quality=90)


def main():
    out, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    names = sorted(os.listdir(PHOTOS))
    for cls in range(len(names)):
        os.makedirs(os.path.join(out, str(cls)), exist_ok=True)
    with ProcessPoolExecutor() as pool:
        list(pool.map(write, [(out, i, size, names) for i in range(count)], chunksize=64))
    print(f"wrote {count} JPEG files of {size}x{size} in {len(names)} classes to {out}")


if __name__ == "__main__":
    main()
