"""The reference for oodlab's perceptual hash (crates/audit/src/phash.rs): imagededup's PHash and
the Pillow Lanczos resize under it, on the committed sample's first 12 Fashion-MNIST test images
(grey, 28 x 28: resized up) and 4 seeded RGB images of 24 x 40 (down along the rows, up down the
columns). Writes crates/audit/tests/fixtures/phash_imagededup.json: each image's planar pixels,
Pillow's 32 x 32 grey thumbnail, and imagededup's hash (hex). Run with imagededup 0.3.3 and
Pillow 13 (the versions it was made with):

    python scripts/reference/phash_imagededup.py
"""
import gzip
import json
import pathlib

import numpy as np
from PIL import Image
import imagededup
from imagededup.methods import PHash
from imagededup.utils.image_utils import preprocess_image

root = pathlib.Path(__file__).resolve().parents[2]
raw = gzip.open(root / "datasets/sample/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
images = []
for i in range(12):
    images.append(np.frombuffer(raw[16 + i * 784 : 16 + (i + 1) * 784], dtype=np.uint8).reshape(28, 28))
rng = np.random.default_rng(0)
for i in range(4):
    # Smooth-ish colour images: a noise field blurred by a box filter, so the hash has structure.
    noise = rng.integers(0, 256, size=(24, 40, 3)).astype(np.float64)
    k = np.ones(5) / 5
    for axis in (0, 1):
        noise = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, noise)
    images.append(noise.clip(0, 255).astype(np.uint8))

phash = PHash(verbose=False)
out = []
for img in images:
    thumb = preprocess_image(img, target_size=(32, 32), grayscale=True)
    planar = img[None] if img.ndim == 2 else np.moveaxis(img, 2, 0)
    out.append(
        {
            "channels": int(planar.shape[0]),
            "height": int(planar.shape[1]),
            "width": int(planar.shape[2]),
            "pixels": planar.reshape(-1).tolist(),
            "thumbnail": thumb.reshape(-1).tolist(),
            "hash": phash.encode_image(image_array=img),
        }
    )
meta = {"imagededup": imagededup.__version__, "pillow": Image.__version__, "numpy": np.__version__}
path = root / "crates/audit/tests/fixtures/phash_imagededup.json"
path.write_text(json.dumps({"made_with": meta, "images": out}))
print(f"wrote {path}: {len(out)} images, {meta}")
