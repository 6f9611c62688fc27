#!/usr/bin/env python3
"""Converts a torchvision ResNet's weights into the safetensors file `model.pretrained` takes.

The file keeps torchvision's parameter names (conv1.weight, layer1.0.bn1.running_mean, fc.weight,
...); oodlab loads every tensor but the head `fc`, which it trains afresh for the run's classes.

    # weights saved with torch.save(model.state_dict(), "resnet50.pth"):
    python3 scripts/torchvision_to_safetensors.py --arch resnet50 --state-dict resnet50.pth --out resnet50.safetensors
    # torchvision's ImageNet weights (downloads them, so on a machine with internet access):
    python3 scripts/torchvision_to_safetensors.py --arch resnet18 --weights IMAGENET1K_V1 --out resnet18.safetensors
    # torchvision's random initialisation, seeded (for tests):
    python3 scripts/torchvision_to_safetensors.py --arch resnet18 --init-seed 0 --out resnet18-init.safetensors

Needs torch, torchvision and safetensors.
"""
import argparse
import sys

import torch
import torchvision
from safetensors.torch import save_file


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=["resnet18", "resnet50"])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--state-dict", help="a file written by torch.save(model.state_dict())")
    src.add_argument("--weights", help="a torchvision weights name, such as IMAGENET1K_V1 (downloaded)")
    src.add_argument("--init-seed", type=int, help="torchvision's random initialisation with this torch seed")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    if a.state_dict:
        state = torch.load(a.state_dict, map_location="cpu", weights_only=True)
        # Checkpoints of training scripts often wrap the state dict or prefix it (DataParallel).
        state = state.get("state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model = getattr(torchvision.models, a.arch)(num_classes=state["fc.weight"].shape[0])
        model.load_state_dict(state)  # strict: the names must be torchvision's
    elif a.weights:
        model = getattr(torchvision.models, a.arch)(weights=a.weights)
    else:
        torch.manual_seed(a.init_seed)
        model = getattr(torchvision.models, a.arch)()
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, a.out, metadata={"arch": a.arch, "source": "torchvision " + torchvision.__version__})
    print(f"wrote {len(tensors)} tensors of {a.arch} to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
