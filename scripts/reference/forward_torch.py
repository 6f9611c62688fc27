#!/usr/bin/env python3
"""PyTorch's values for crates/train/tests/forward_torch.rs: two SGD steps of each method, with
the step's inputs through the network in one joint pass or in separate passes, as the reference
codes do (OE's `net(torch.cat((x, oe_x)))`; MixOE's `net(x)` then `net(mixed_x)`).

An independent implementation of DESIGN.md's losses in PyTorch (and of `mix_at`, `noise` and
`pair`, the authors' joint pass written as their `ResNet.forward(x, lam, args, mix=True)`) on the CNN of DESIGN.md (conv+BN+
ReLU+pool twice, conv+ReLU, global average pool, linear), small: channels 4-8-8, 12x12 images,
3 classes, 6 ID images a step (outliers: 12 for the OE family, as its 2 * batch_size; 6 for the
mixing methods). Every parameter and input follows a formula that the Rust test repeats:
a tensor of `n` values with seed s holds float32(sin(0.731 i + s) * scale); computed in float64
from those float32 values. The mix of each step (lambdas, cutmix boxes) is fixed here and given to
oodlab as drawn, and so is NoisyMix's noise (its values rounded to float32). After two steps of SGD (lr 0.05, momentum 0.9, Nesterov, weight decay 5e-4) the
script writes each step's loss and every parameter and batch-norm running statistic.

    .venv-bench/bin/python scripts/reference/forward_torch.py > crates/train/tests/fixtures/forward_torch.json
"""
import json

import torch
import torch.nn.functional as F
from torch import nn

torch.set_default_dtype(torch.float64)
B, K, H, W = 6, 3, 12, 12
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4


def values(shape, seed, scale):
    n = 1
    for d in shape:
        n *= d
    v = (torch.sin(torch.arange(n, dtype=torch.float64) * 0.731 + seed) * scale).to(torch.float32).to(torch.float64)
    return v.reshape(shape)


def cnn():
    net = nn.Sequential()
    net.conv1 = nn.Conv2d(1, 4, 3, padding=1)
    net.bn1 = nn.BatchNorm2d(4)
    net.relu1, net.pool1 = nn.ReLU(), nn.MaxPool2d(2)
    net.conv2 = nn.Conv2d(4, 8, 3, padding=1)
    net.bn2 = nn.BatchNorm2d(8)
    net.relu2, net.pool2 = nn.ReLU(), nn.MaxPool2d(2)
    net.conv3 = nn.Conv2d(8, 8, 3, padding=1)
    net.relu3, net.gap, net.flat = nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    net.fc = nn.Linear(8, K)
    # Parameters by name, seeds and scales as the Rust test's INIT table.
    init = {
        "conv1.weight": (1.0, 0.5), "conv1.bias": (2.0, 0.1), "bn1.weight": (3.0, 0.2), "bn1.bias": (4.0, 0.1),
        "conv2.weight": (5.0, 0.3), "conv2.bias": (6.0, 0.1), "bn2.weight": (7.0, 0.2), "bn2.bias": (8.0, 0.1),
        "conv3.weight": (9.0, 0.3), "conv3.bias": (10.0, 0.1), "fc.weight": (11.0, 0.5), "fc.bias": (12.0, 0.1),
    }
    with torch.no_grad():
        for name, p in net.named_parameters():
            seed, scale = init[name]
            v = values(p.shape, seed, scale)
            p.copy_(v + 1.0 if name.startswith("bn") and name.endswith("weight") else v)
    return net


def state(net):
    out = {}
    for name, t in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        out[name] = t.flatten().tolist()
    return out


def inputs(step, n_out):
    x = values((B, 1, H, W), 20.0 + step, 1.3)
    y = torch.tensor([(i + step) % K for i in range(B)])
    x_out = values((n_out, 1, H, W), 40.0 + step, 1.1) - 0.2
    return x, y, x_out


def soft_ce(z, t):
    return -(t * F.log_softmax(z, dim=1)).sum(1).mean()


def targets(y, lam):
    return lam * F.one_hot(y, K) + (1 - lam) / K


# The CNN's stages (oodlab's `mix_at`), each the output of these modules in order.
STAGES = ["input", "block1", "block2", "block3", "features", "logits"]
GROUPS = {"block1": ["conv1", "bn1", "relu1", "pool1"], "block2": ["conv2", "bn2", "relu2", "pool2"],
          "block3": ["conv3", "relu3"], "features": ["gap", "flat"], "logits": ["fc"]}


def span(net, x, frm, to):
    """The modules after stage `frm` up to stage `to`."""
    for stage in STAGES[STAGES.index(frm) + 1:STAGES.index(to) + 1]:
        for name in GROUPS[stage]:
            x = getattr(net, name)(x)
    return x


def authors_forward(net, x, lam, at, noise):
    """The LMOE authors' `ResNet.forward(x, lam, args, mix=True)` (shinohara-git/feature_MixOE,
    utils/resnet50.py) on this CNN: run the stages, and after stage `at` split the batch in
    halves, mix them and add the noise, then go on."""
    for stage in STAGES:
        if stage != "input":
            for name in GROUPS[stage]:
                x = getattr(net, name)(x)
        if stage == at:
            bs = x.size(0) // 2
            x = lam * x[:bs] + (1 - lam) * x[bs:]
            x = with_noise(x, noise)
    return x


def with_noise(x, noise):
    """The authors' `_noise`: `mult_noise * x + add_noise`, the draws given."""
    if noise is None:
        return x
    mult = torch.tensor(noise["mult"]).reshape(x.shape) if noise.get("mult") is not None else 1.0
    add = torch.tensor(noise["add"]).reshape(x.shape) if noise.get("add") is not None else 0.0
    return mult * x + add


def draw_noise(levels, shape, seed):
    """NoisyMix's draws for a mix of `shape`, rounded to float32 (oodlab gets them as float32):
    `mult * Beta(2,5) * U(-1, 1) + 1` and `add * Beta(2,5) * N(0, 1)`, a level of 0 drawing nothing."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    if levels.get("add", 0) > 0:
        beta = torch.distributions.Beta(2.0, 5.0).sample().item()
        out["add"] = (levels["add"] * beta * torch.randn(shape, generator=gen)).to(torch.float32).flatten().tolist()
    if levels.get("mult", 0) > 0:
        beta = torch.distributions.Beta(2.0, 5.0).sample().item()
        u = torch.rand(shape, generator=gen)
        out["mult"] = (levels["mult"] * beta * (2 * u - 1) + 1).to(torch.float32).flatten().tolist()
    return out


def stage_shape(at, n):
    """The shape of stage `at`'s output for `n` images of this script's CNN."""
    return {"input": (n, 1, H, W), "block1": (n, 4, H // 2, W // 2), "block2": (n, 8, H // 4, W // 4),
            "block3": (n, 8, H // 4, W // 4), "features": (n, 8), "logits": (n, K)}[at]


def represent_mix(method, net, x, y, x_out, draw, lam, x_mix):
    """`z_in`, the logits of the mix at `mix_at`, and `f(x_mix)` when given, with the passes
    grouped as `forward` and `pair` say (docs/methods.md, "Where to mix")."""
    kind, grouping = method["kind"], method["forward"]
    at = method.get("mix_at", "input" if kind == "mixoe" else "logits")
    pair = method.get("pair", "separate")
    noise = draw.get("noise")

    def mix(a, b):
        if at == "input":
            r, _ = mix_inputs(a, b, method["mix"], draw["lams"], draw["boxes"])
        else:
            r = lam.reshape(-1, *([1] * (a.dim() - 1))) * a + (1 - lam.reshape(-1, *([1] * (a.dim() - 1)))) * b
        return with_noise(r, noise)

    if grouping == "separate" and pair == "joint":
        z_in = net(x)
        if draw["lams"].count(draw["lams"][0]) == len(draw["lams"]) and at != "input":
            # One lambda for the batch: the authors' forward itself.
            z_mix = authors_forward(net, torch.cat((x, x_out)), draw["lams"][0], at, noise)
        else:
            h = span(net, torch.cat((x, x_out)), "input", at)
            z_mix = span(net, mix(h[:B], h[B:]), at, "logits")
        return z_in, z_mix, (net(x_mix) if x_mix is not None else None)
    if grouping == "separate":
        h_in = span(net, x, "input", at)
        z_in = span(net, h_in, at, "logits")
        h_out = span(net, x_out, "input", at)
        z_mix = span(net, mix(h_in, h_out), at, "logits")
        return z_in, z_mix, (net(x_mix) if x_mix is not None else None)
    xs = [x, x_out] + ([x_mix] if x_mix is not None else [])
    h = torch.split(span(net, torch.cat(xs), "input", at), [t.shape[0] for t in xs])
    after = [h[0], mix(h[0], h[1])] + ([h[2]] if x_mix is not None else [])
    z = torch.split(span(net, torch.cat(after), at, "logits"), [t.shape[0] for t in after])
    return z[0], z[1], (z[2] if x_mix is not None else None)


def forward(net, xs, grouping):
    if grouping == "joint":
        z = net(torch.cat(xs))
        return list(torch.split(z, [x.shape[0] for x in xs]))
    return [net(x) for x in xs]


def mix_inputs(x, x_out, mix, lams, boxes):
    """x_mix and the lambdas of the targets, (b, 1)."""
    if mix == "mixup":
        lam = torch.tensor(lams).reshape(-1, 1, 1, 1)
        return lam * x + (1 - lam) * x_out, torch.tensor(lams).reshape(-1, 1)
    mixed = x.clone()
    kept = []
    for i, (y1, y2, x1, x2) in enumerate(boxes):
        mixed[i, :, y1:y2, x1:x2] = x_out[i, :, y1:y2, x1:x2]
        kept.append(1 - (y2 - y1) * (x2 - x1) / (H * W))
    return mixed, torch.tensor(kept).reshape(-1, 1)


def space(z, name):
    if name == "centered":
        return z - z.mean(1, keepdim=True)
    if name == "log-softmax":
        return F.log_softmax(z, dim=1)
    return z


def loss(method, net, x, y, x_out, draw):
    kind, grouping = method["kind"], method["forward"]
    if kind == "oe":
        z_in, z_out = forward(net, [x, x_out], grouping)
        return F.cross_entropy(z_in, y) + method["weight"] * (torch.logsumexp(z_out, 1) - z_out.mean(1)).mean()
    if kind == "energy-oe":
        z_in, z_out = forward(net, [x, x_out], grouping)
        e_in, e_out = -torch.logsumexp(z_in, 1), -torch.logsumexp(z_out, 1)
        hinge = F.relu(e_in - method["m_in"]).pow(2).mean() + F.relu(method["m_out"] - e_out).pow(2).mean()
        return F.cross_entropy(z_in, y) + method["weight"] * hinge
    x_mix, lam = mix_inputs(x, x_out, method["mix"], draw["lams"], draw["boxes"])
    t = targets(y, lam)
    staged = any(k in method for k in ("mix_at", "pair")) or "noise" in draw
    if kind == "mixoe" and staged:
        z_in, z_mix, _ = represent_mix(method, net, x, y, x_out, draw, lam, None)
        return F.cross_entropy(z_in, y) + method["weight"] * soft_ce(z_mix, t)
    if kind == "mixoe":
        z_in, z_mix = forward(net, [x, x_mix], grouping)
        return F.cross_entropy(z_in, y) + method["weight"] * soft_ce(z_mix, t)
    # lmoe
    c = method["consistency"]
    if staged:
        needs = method["input_mix_ce"] or c["loss"] != "none"
        z_in, z_lmix, z_xmix = represent_mix(method, net, x, y, x_out, draw, lam, x_mix if needs else None)
    else:
        z_in, z_out, z_xmix = forward(net, [x, x_out, x_mix], grouping)
        z_lmix = lam * z_in + (1 - lam) * z_out
    total = F.cross_entropy(z_in, y) + method["weight"] * soft_ce(z_lmix, t)
    if method["input_mix_ce"]:
        total = total + method["weight"] * soft_ce(z_xmix, t)
    xs, ls = space(z_xmix, c["space"]), space(z_lmix, c["space"])
    if c["detach"] == "logit-mix":
        ls = ls.detach()
    elif c["detach"] == "input-mix":
        xs = xs.detach()
    if c["loss"] == "mse":
        total = total + c["weight"] * (xs - ls).pow(2).mean()
    elif c["loss"] == "kl":
        target, other = (xs, ls) if c["detach"] == "input-mix" else (ls, xs)
        log_t, log_o = F.log_softmax(target, 1), F.log_softmax(other, 1)
        total = total + c["weight"] * (log_t.exp() * (log_t - log_o)).sum(1).mean()
    return total


def lmoe(**over):
    m = {"kind": "lmoe", "mix": "mixup", "alpha": 1.0, "weight": 5.0, "input_mix_ce": False, "lam_per": "batch",
         "forward": "separate", "consistency": {"loss": "mse", "weight": 1.0, "detach": "logit-mix", "space": "logits"}}
    for k, v in over.items():
        if k == "consistency":
            m["consistency"] = {**m["consistency"], **v}
        else:
            m[k] = v
    return m


BATCH_LAM = [[0.37] * B, [0.81] * B]
SAMPLE_LAM = [[0.1, 0.35, 0.5, 0.62, 0.77, 0.93], [0.88, 0.2, 0.45, 0.6, 0.05, 0.7]]
BATCH_BOXES = [[(2, 9, 3, 10)] * B, [(0, 5, 6, 12)] * B]
SAMPLE_BOXES = [[(0, 4, 0, 4), (2, 8, 1, 9), (5, 12, 5, 12), (3, 6, 3, 6), (0, 12, 6, 12), (7, 9, 2, 11)],
                [(1, 11, 1, 11), (4, 8, 4, 8), (0, 3, 0, 12), (6, 12, 0, 6), (2, 5, 7, 10), (9, 12, 9, 12)]]

CASES = [
    ("oe-joint", {"kind": "oe", "weight": 0.5, "forward": "joint"}, None),
    ("oe-separate", {"kind": "oe", "weight": 0.5, "forward": "separate"}, None),
    ("energy-oe-joint", {"kind": "energy-oe", "weight": 0.1, "m_in": -13.0, "m_out": -6.0, "forward": "joint"}, None),
    ("energy-oe-separate", {"kind": "energy-oe", "weight": 0.1, "m_in": -1.5, "m_out": -0.5, "forward": "separate"}, None),
    ("mixoe-mixup-separate", {"kind": "mixoe", "mix": "mixup", "alpha": 1.0, "weight": 5.0, "forward": "separate"}, ("mixup", "batch")),
    ("mixoe-mixup-joint", {"kind": "mixoe", "mix": "mixup", "alpha": 1.0, "weight": 5.0, "forward": "joint"}, ("mixup", "batch")),
    ("mixoe-cutmix-separate", {"kind": "mixoe", "mix": "cutmix", "alpha": 2.0, "weight": 5.0, "forward": "separate"}, ("cutmix", "batch")),
    ("lmoe-separate", lmoe(), ("mixup", "batch")),
    ("lmoe-joint", lmoe(forward="joint"), ("mixup", "batch")),
    ("lmoe-kl-input-ce-sample-cutmix", lmoe(mix="cutmix", alpha=2.0, lam_per="sample", input_mix_ce=True,
                                            consistency={"loss": "kl", "detach": "none"}), ("cutmix", "sample")),
    ("lmoe-detach-input-centered", lmoe(consistency={"detach": "input-mix", "space": "centered"}), ("mixup", "batch")),
    ("lmoe-detach-none-log-softmax", lmoe(lam_per="sample", consistency={"detach": "none", "space": "log-softmax"}), ("mixup", "sample")),
    # Where to mix (mix_at), NoisyMix's noise and the pairing of the mix's two inputs.
    # The LMOE authors' public code at `fc`: one joint pass for the mix, noise, weight 1, no consistency.
    ("lmoe-authors-code", lmoe(weight=1.0, mix_at="logits", pair="joint", consistency={"loss": "none"}),
     ("mixup", "batch", {"add": 0.4, "mult": 0.2})),
    ("lmoe-authors-consistency", lmoe(weight=1.0, mix_at="logits", pair="joint"), ("mixup", "batch", {"add": 0.4, "mult": 0.2})),
    ("lmoe-authors-block1", lmoe(weight=1.0, mix_at="block1", pair="joint", consistency={"loss": "none"}),
     ("mixup", "batch", {"add": 0.4, "mult": 0.2})),
    ("lmoe-block2-separate-add-consistency", lmoe(mix_at="block2", consistency={"loss": "kl", "detach": "none"}),
     ("mixup", "batch", {"add": 0.3})),
    ("lmoe-features-joint-sample", lmoe(mix_at="features", forward="joint", lam_per="sample", input_mix_ce=True),
     ("mixup", "sample")),
    ("lmoe-input-cutmix", lmoe(mix="cutmix", alpha=2.0, mix_at="input", consistency={"loss": "none"}), ("cutmix", "batch")),
    ("mixoe-block3-joint-mult", {"kind": "mixoe", "mix": "mixup", "alpha": 1.0, "weight": 5.0, "forward": "joint",
                                 "mix_at": "block3"}, ("mixup", "batch", {"mult": 0.5})),
    ("mixoe-block1-separate-noise", {"kind": "mixoe", "mix": "mixup", "alpha": 1.0, "weight": 5.0, "forward": "separate",
                                     "mix_at": "block1"}, ("mixup", "batch", {"add": 0.4, "mult": 0.2})),
    ("mixoe-input-noise", {"kind": "mixoe", "mix": "mixup", "alpha": 1.0, "weight": 5.0, "forward": "separate"},
     ("mixup", "batch", {"add": 0.4, "mult": 0.2})),
]


def main():
    torch.manual_seed(0)  # the Beta draws of the noise
    cases = []
    for name, method, mixing in CASES:
        net = cnn()
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WD)
        n_out = 2 * B if method["kind"] in ("oe", "energy-oe") else B
        steps = []
        for step in range(2):
            x, y, x_out = inputs(step, n_out)
            draw = None
            if mixing:
                mix, per = mixing[:2]
                lams = (BATCH_LAM if per == "batch" else SAMPLE_LAM)[step]
                boxes = (BATCH_BOXES if per == "batch" else SAMPLE_BOXES)[step] if mix == "cutmix" else []
                draw = {"lams": lams, "boxes": boxes}
                if len(mixing) > 2:
                    default = "input" if method["kind"] == "mixoe" else "logits"
                    draw["noise"] = draw_noise(mixing[2], stage_shape(method.get("mix_at", default), B), 100 + step)
            opt.zero_grad()
            value = loss(method, net, x, y, x_out, draw)
            value.backward()
            opt.step()
            steps.append({"loss": value.item(), **({"draw": draw} if draw else {})})
        cases.append({"name": name, "method": method, "outliers": n_out, "steps": steps, "state": state(net)})
    print(json.dumps({"torch": torch.__version__, "cases": cases}))


if __name__ == "__main__":
    main()
