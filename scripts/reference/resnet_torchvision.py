#!/usr/bin/env python3
"""Reference values of torchvision's ResNet-18 and ResNet-50 for crates/train/tests/resnet_reference.rs.

Weights and inputs are given by formulas that the Rust test computes the same way, so nothing large
is kept: for the k-th parameter in sorted-name order (num_batches_tracked left out) and flat index
i, s = sin(0.7 i + 1.3 k + 0.1) and
  convolution weight   s * sqrt(4 / fan_out)        (fan_out = out channels * kernel area)
  linear weight        s / sqrt(fan_in)
  batch-norm weight    1 + 0.1 s;   any bias 0.1 s
  running_mean         0.1 s;       running_var  1 + 0.5 s^2
Input (2, 3, 64, 64): x_i = sin(0.013 i + 0.5); labels [1, 3]; 5 classes. Computed in float64.

Records, per architecture: the parameter names and shapes of torchvision's model (1000 classes),
evaluation-mode logits, then training-mode logits, the cross-entropy loss, gradient sums and
squared norms of a few parameters, and bn1's running mean after that training-mode pass.

    python3 scripts/reference/resnet_torchvision.py > crates/train/tests/fixtures/resnet_torchvision.json
(run where torch and torchvision are installed: the GPU machines have both.)
"""
import json
import math

import torch
import torchvision


def formula_state(model):
    names = sorted(k for k in model.state_dict() if not k.endswith("num_batches_tracked"))
    state = {}
    for k, name in enumerate(names):
        t = model.state_dict()[name]
        n = t.numel()
        s = torch.sin(0.7 * torch.arange(n, dtype=torch.float64) + 1.3 * k + 0.1)
        if name.endswith("running_var"):
            v = 1 + 0.5 * s * s
        elif name.endswith("running_mean") or name.endswith("bias"):
            v = 0.1 * s
        elif t.dim() == 4:
            fan_out = t.shape[0] * t.shape[2] * t.shape[3]
            v = s * math.sqrt(4.0 / fan_out)
        elif t.dim() == 2:
            v = s / math.sqrt(t.shape[1])
        else:
            v = 1 + 0.1 * s
        # Rounded to float32 first: the Rust side holds f32 weights.
        state[name] = v.to(torch.float32).to(torch.float64).reshape(t.shape)
    return state


def reference(arch, watched):
    names = {k: list(v.shape) for k, v in getattr(torchvision.models, arch)().state_dict().items()}
    model = getattr(torchvision.models, arch)(num_classes=5).double()
    model.load_state_dict(formula_state(model), strict=False)
    n = 2 * 3 * 64 * 64
    x = torch.sin(0.013 * torch.arange(n, dtype=torch.float64) + 0.5).to(torch.float32).to(torch.float64).reshape(2, 3, 64, 64)
    y = torch.tensor([1, 3])
    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    model.train()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    params = dict(model.named_parameters())
    grads = {w: {"sum": params[w].grad.sum().item(), "sumsq": (params[w].grad ** 2).sum().item()} for w in watched}
    return {
        "names": names,
        "eval_logits": eval_logits.flatten().tolist(),
        "train_logits": logits.detach().flatten().tolist(),
        "loss": loss.item(),
        "grads": grads,
        "bn1_running_mean": model.bn1.running_mean[:8].tolist(),
    }


def main():
    out = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "resnet18": reference("resnet18", ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight", "fc.weight", "fc.bias"]),
        "resnet50": reference("resnet50", ["conv1.weight", "layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "fc.weight"]),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
