"""imagededup's side of scripts/bench/audit.sh: PHash of every image of two IDX files (encode_image
on each array, as imagededup hashes arrays), then find_duplicates over all of them at a distance;
prints JSON: seconds (encoding + search), and the cross-file pairs (index in file A, index in B).

    python scripts/bench/audit_imagededup.py A-images.gz B-images.gz DISTANCE [LIMIT_A LIMIT_B]
"""
import gzip
import json
import sys
import time

import numpy as np
from imagededup.methods import PHash


def idx(path, limit):
    raw = gzip.open(path).read()
    n, h, w = (int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(3))
    n = min(n, limit)
    return np.frombuffer(raw[16 : 16 + n * h * w], dtype=np.uint8).reshape(n, h, w)


a_path, b_path, distance = sys.argv[1], sys.argv[2], int(sys.argv[3])
limit_a = int(sys.argv[4]) if len(sys.argv) > 4 else 10**9
limit_b = int(sys.argv[5]) if len(sys.argv) > 5 else 10**9
a, b = idx(a_path, limit_a), idx(b_path, limit_b)
phash = PHash(verbose=False)
start = time.perf_counter()
encodings = {f"a{i}": phash.encode_image(image_array=img) for i, img in enumerate(a)}
encodings.update({f"b{j}": phash.encode_image(image_array=img) for j, img in enumerate(b)})
duplicates = phash.find_duplicates(encoding_map=encodings, max_distance_threshold=distance, scores=False)
seconds = time.perf_counter() - start
pairs = sorted({(int(k[1:]), int(d[1:])) for k, ds in duplicates.items() if k[0] == "a" for d in ds if d[0] == "b"})
print(json.dumps({"seconds": seconds, "images": [len(a), len(b)], "pairs": pairs}))
