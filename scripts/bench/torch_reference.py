#!/usr/bin/env python3
"""PyTorch's side of the training-step benchmarks (scripts/bench/train-step.sh, scripts/gpu-check.sh).

Times the same step as `oodlab bench-step`: forward in training mode, cross-entropy, backward, SGD
(lr 0.01, momentum 0.9, weight decay 5e-4), the loss read back each step; random inputs, warm-up
steps untimed. Prints one line in oodlab's format, or a JSON object with --json.

    python3 scripts/bench/torch_reference.py --arch cnn --batch 128 --image 1x28x28
    python3 scripts/bench/torch_reference.py --arch resnet18 --batch 64 --image 3x224x224 --device cuda
"""
import argparse
import json
import resource
import time

import torch
from torch import nn


def cnn(cin, channels, classes):
    a, b, c = channels
    return nn.Sequential(
        nn.Conv2d(cin, a, 3, padding=1), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(b, c, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes),
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="cnn", choices=["cnn", "resnet18", "resnet50"])
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image", default="1x28x28")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="f32", choices=["f32", "bf16", "f16"])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    c, h, w = (int(v) for v in a.image.split("x"))
    torch.manual_seed(0)
    if a.arch == "cnn":
        model = cnn(c, [int(v) for v in a.channels.split(",")], a.classes)
    else:
        import torchvision
        model = getattr(torchvision.models, a.arch)(num_classes=a.classes)
        if c != 3:
            model.conv1 = nn.Conv2d(c, 64, 7, 2, 3, bias=False)
    dev = torch.device(a.device)
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(a.batch, c, h, w, device=dev) * 2 - 1
    y = torch.arange(a.batch, device=dev) % a.classes
    half = {"bf16": torch.bfloat16, "f16": torch.float16}.get(a.precision)
    # f16 needs loss scaling against underflow, as training with autocast does.
    scaler = torch.amp.GradScaler(dev.type) if a.precision == "f16" else None
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=half, enabled=half is not None):
            loss = nn.functional.cross_entropy(model(x), y)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        loss.item()  # waits for the GPU, as oodlab reads its loss
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    ips = a.batch * len(times) / sum(times)
    median_ms = sorted(times)[len(times) // 2] * 1e3
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    # What the whole device has in use (the CUDA context and PyTorch's cache included), the measure
    # oodlab reports as gpu_mem_mb.
    gpu_used_mb = None
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info()
        gpu_used_mb = (total - free) / 2**20
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    if a.json:
        print(json.dumps({"arch": a.arch, "precision": a.precision, "batch": a.batch, "image": a.image, "device": name,
                          "steps": len(times), "images_per_s": ips, "median_step_ms": median_ms, "peak_rss_mb": rss_mb,
                          "gpu_mem_mb": gpu_mb, "gpu_device_used_mb": gpu_used_mb,
                          "gpu_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if dev.type == "cuda" else None,
                          "tf32_cudnn": torch.backends.cudnn.allow_tf32, "torch": torch.__version__}))
    else:
        gpu = f", GPU memory peak {gpu_mb:.0f} MiB" if gpu_mb is not None else ""
        print(f"pytorch {torch.__version__} {a.arch} {a.precision} batch {a.batch} {a.image} on {name}: {ips:.1f} images/s "
              f"(median step {median_ms:.2f} ms, {len(times)} steps), peak RSS {rss_mb:.0f} MiB{gpu}")


if __name__ == "__main__":
    main()
