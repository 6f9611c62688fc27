#!/usr/bin/env python3
"""PyTorch's values for crates/kernels/tests/against_torch.rs: outputs and gradients of the CPU
kernels' ops on fixed inputs.

Inputs follow the Rust test's formulas: a tensor of `n` values with seed s holds
float32(sin(0.731 i + s) * 1.7); the gradient of each output comes from sum(y * g) with
g_i = 0.5 + (i mod 13) * 0.25. Computed in float64 from the float32 inputs.

    .venv-bench/bin/python scripts/reference/kernels_torch.py > crates/kernels/tests/fixtures/kernels_torch.json
"""
import json

import torch
import torch.nn.functional as F


def values(shape, seed):
    n = 1
    for d in shape:
        n *= d
    v = (torch.sin(torch.arange(n, dtype=torch.float64) * 0.731 + seed) * 1.7).to(torch.float32).to(torch.float64)
    return v.reshape(shape).requires_grad_(True)


def upstream(y):
    return (0.5 + (torch.arange(y.numel(), dtype=torch.float64) % 13) * 0.25).reshape(y.shape)


def flat(t):
    return t.detach().flatten().tolist()


def conv(n, c, o, h, w, k, s, p):
    x, wt, b = values((n, c, h, w), 0.1), values((o, c, k, k), 0.7), values((o,), 1.3)
    y = F.conv2d(x, wt, b, stride=s, padding=p)
    (y * upstream(y)).sum().backward()
    return {"case": [n, c, o, h, w, k, s, p], "y": flat(y), "dx": flat(x.grad), "dw": flat(wt.grad), "db": flat(b.grad)}


def bn_relu_pool(n, c, h, w, pool):
    x, gamma, beta = values((n, c, h, w), 0.5), values((c,), 2.0), values((c,), 3.0)
    y = F.relu(F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5))
    if pool:
        y = F.max_pool2d(y, pool[0], pool[1], pool[2])
    (y * upstream(y)).sum().backward()
    return {"case": [n, c, h, w] + (list(pool) if pool else []), "y": flat(y), "dx": flat(x.grad), "dgamma": flat(gamma.grad), "dbeta": flat(beta.grad)}


def conv_bn(n, c, o, h, w, k, s, p, pool):
    """A convolution, batch-norm in training mode, ReLU and (if given) max-pooling: the fused op."""
    x, wt, b = values((n, c, h, w), 0.1), values((o, c, k, k), 0.7), values((o,), 1.3)
    gamma, beta = values((o,), 2.0), values((o,), 3.0)
    y = F.relu(F.batch_norm(F.conv2d(x, wt, b, stride=s, padding=p), None, None, gamma, beta, training=True, eps=1e-5))
    if pool:
        y = F.max_pool2d(y, pool[0], pool[1], pool[2])
    (y * upstream(y)).sum().backward()
    return {
        "case": [n, c, o, h, w, k, s, p] + (list(pool) if pool else []),
        "y": flat(y),
        "dx": flat(x.grad),
        "dw": flat(wt.grad),
        "dgamma": flat(gamma.grad),
        "dbeta": flat(beta.grad),
    }


def pool(n, c, h, w, k, s, p):
    x = values((n, c, h, w), 0.3)
    y = F.max_pool2d(x, k, s, p)
    (y * upstream(y)).sum().backward()
    return {"case": [n, c, h, w, k, s, p], "y": flat(y), "dx": flat(x.grad)}


def main():
    out = {
        "torch": torch.__version__,
        "conv": [conv(2, 3, 4, 7, 9, 3, 1, 1), conv(1, 3, 2, 11, 11, 7, 2, 3), conv(2, 3, 4, 6, 5, 1, 2, 0)],
        "bn_relu_pool": [bn_relu_pool(4, 3, 6, 6, None), bn_relu_pool(4, 3, 6, 6, (2, 2, 0)), bn_relu_pool(2, 4, 9, 8, (3, 2, 1))],
        "pool": [pool(1, 2, 7, 9, 3, 2, 1), pool(3, 2, 9, 7, 2, 2, 0)],
        "conv_bn": [conv_bn(4, 3, 5, 8, 8, 3, 1, 1, (2, 2, 0)), conv_bn(2, 2, 3, 9, 7, 3, 2, 1, None), conv_bn(3, 2, 4, 7, 9, 3, 1, 1, (3, 2, 1))],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
