"""Compares the quickstart trained on the GPU with the quickstart trained on the CPU (issue #17,
item 7: the GPU's results land within seed noise of the CPU's, same seeds, both reported).

    python scripts/bench/quickstart_devices.py CPU.json GPU.json [--score msp]

Each file is `oodlab results quickstart --format json` of one home. Per method entry and OOD set,
over the seeds both devices trained: the CPU's and the GPU's AUROC (and ID accuracy) seed by seed,
their means, and the difference of the means against the seed noise. The seed noise is the pooled
standard deviation across seeds within each device (every seed a device trained counts, so the
GPU's extra seeds sharpen it); the difference of two means of n seeds each has a standard error of
sigma * sqrt(2 / n), and a difference within twice that is "within seed noise". GPU arithmetic
(cuDNN's algorithms, TF32, summation order) differs from the CPU kernels', so the runs are not
equal run for run; they should not differ more than another set of seeds would.

Exit status 1 when a cell is outside the bound or nothing could be compared.
"""
import json
import math
import sys
from collections import defaultdict


def load(path, score):
    """(entry, ood_set) -> {seed: (auroc, id_acc)} for one OOD score, split 0; empty when the file
    holds no results (a quickstart that did not finish within gpu-check.sh's budget leaves none)."""
    cells = defaultdict(dict)
    with open(path) as f:
        text = f.read()
    try:
        rows = json.loads(text)
    except ValueError:
        print(f"{path}: no results ({len(text)} bytes that are not oodlab's JSON)", file=sys.stderr)
        return cells
    for row in rows:
        if row["score"] == score and row["split"] == 0:
            cells[(row["entry"], row["ood_set"])][row["seed"]] = (row["auroc"], row["id_acc"])
    return cells


def seeds_label(cpu, gpu):
    seeds = sorted({s for key in set(cpu) & set(gpu) for s in set(cpu[key]) & set(gpu[key])})
    return ", ".join(map(str, seeds)) or "(none in common)"


def variance(values):
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def main():
    args = sys.argv[1:]
    score = "msp"
    if "--score" in args:
        i = args.index("--score")
        score = args[i + 1]
        del args[i : i + 2]
    cpu, gpu = load(args[0], score), load(args[1], score)
    failed, compared = 0, 0
    print(f"quickstart, {score} AUROC of seeds {seeds_label(cpu, gpu)} on the CPU and on the GPU (split 0); mean ID accuracy CPU / GPU")
    for key in sorted(set(cpu) & set(gpu)):
        seeds = sorted(set(cpu[key]) & set(gpu[key]))
        if not seeds:
            continue
        within = [v for v in (variance([a for a, _ in cell.values()]) for cell in (cpu[key], gpu[key])) if v is not None]
        sigma = math.sqrt(sum(within) / len(within)) if within else float("nan")
        c = [cpu[key][s][0] for s in seeds]
        g = [gpu[key][s][0] for s in seeds]
        diff = sum(g) / len(g) - sum(c) / len(c)
        bound = 2 * sigma * math.sqrt(2 / len(seeds))
        ok = abs(diff) <= bound
        compared += 1
        failed += not ok
        acc_c = sum(cpu[key][s][1] for s in seeds) / len(seeds)
        acc_g = sum(gpu[key][s][1] for s in seeds) / len(seeds)
        print(
            f"{key[0]:<9} {key[1]:<8} CPU {' '.join(f'{v:.4f}' for v in c)}  GPU {' '.join(f'{v:.4f}' for v in g)}"
            f"  diff of means {diff:+.4f}, seed sd {sigma:.4f}, bound {bound:.4f}: {'ok' if ok else 'OUTSIDE'}"
            f"  (ID acc {acc_c:.3f} / {acc_g:.3f})"
        )
    if compared == 0:
        print("quickstart GPU vs CPU: no cell trained on both devices")
        return 1
    print(
        f"quickstart GPU vs CPU: {compared - failed} of {compared} cells within seed noise"
        f" (|mean GPU - mean CPU| <= 2 sd sqrt(2/n), {score} AUROC)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
