"""Reference values for oodlab's method losses (crates/train/tests/losses_reference.rs).

Everything is written out in NumPy from the formulas of DESIGN.md ("The methods"), independently of
the Rust code: the losses on fixed logits, the gradients of LMOE's consistency term by central
finite differences (the full gradient, which the Rust test compares with the sides that are not
detached), and CutMix's box and recomputed lambda.
Usage: python3 scripts/reference/losses_numpy.py > crates/train/tests/fixtures/losses_reference.json
"""
import itertools
import json

import numpy as np

K = 4
Z_IN = np.array([[2.0, -1.0, 0.5, 0.1], [0.3, 0.2, 1.7, -0.4], [-0.6, 0.9, 0.0, 1.2]])
Z_OUT = np.array([[0.4, 0.1, -0.3, 0.2], [-1.1, 0.6, 0.3, 0.9], [0.7, -0.2, 0.5, -0.8]])
Z_XMIX = np.array([[1.2, -0.3, 0.4, 0.0], [-0.2, 0.5, 1.1, 0.3], [0.1, 0.4, 0.2, 0.6]])
Y = np.array([0, 2, 3])
LAMS = {"batch": np.array([0.7, 0.7, 0.7]), "sample": np.array([0.2, 0.5, 0.9])}


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def lse(z):
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


def ce(z, y):
    return -log_softmax(z)[np.arange(len(y)), y].mean()


def soft_ce(z, t):
    return -(t * log_softmax(z)).sum(axis=1).mean()


def targets(y, lam):
    return lam[:, None] * np.eye(K)[y] + (1 - lam[:, None]) / K


def oe(w):
    return ce(Z_IN, Y) + w * soft_ce(Z_OUT, np.full((3, K), 1.0 / K))


def energy_oe(w, m_in, m_out):
    e_in, e_out = -lse(Z_IN), -lse(Z_OUT)
    return ce(Z_IN, Y) + w * ((np.maximum(e_in - m_in, 0) ** 2).mean() + (np.maximum(m_out - e_out, 0) ** 2).mean())


def mixoe(lam, w):
    return ce(Z_IN, Y) + w * soft_ce(Z_XMIX, targets(Y, lam))


def consistency(z_in, z_out, z_xmix, lam, loss, detach):
    z_lmix = lam[:, None] * z_in + (1 - lam[:, None]) * z_out
    if loss == "mse":
        return ((z_xmix - z_lmix) ** 2).mean()
    # KL(softmax(target) || softmax(other)); the target is the input mix only when it is detached.
    target, other = (z_xmix, z_lmix) if detach == "input-mix" else (z_lmix, z_xmix)
    lt, lo = log_softmax(target), log_softmax(other)
    return (np.exp(lt) * (lt - lo)).sum(axis=1).mean()


def lmoe(lam, w, c, loss, detach, input_mix_ce):
    z_lmix = lam[:, None] * Z_IN + (1 - lam[:, None]) * Z_OUT
    t = targets(Y, lam)
    total = ce(Z_IN, Y) + w * soft_ce(z_lmix, t)
    if input_mix_ce:
        total += w * soft_ce(Z_XMIX, t)
    if loss != "none":
        total += c * consistency(Z_IN, Z_OUT, Z_XMIX, lam, loss, detach)
    return total


def grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (f(up) - f(down)) / (2 * h)
    return g


def cutmix_box(h, w, lam, cy, cx):
    # The CutMix reference (rand_bbox) with rows and columns named as such.
    rat = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * rat), int(w * rat)
    y1, y2 = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
    x1, x2 = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
    return int(y1), int(y2), int(x1), int(x2), 1.0 - (y2 - y1) * (x2 - x1) / (h * w)


def main():
    out = {
        "z_in": Z_IN.tolist(), "z_out": Z_OUT.tolist(), "z_xmix": Z_XMIX.tolist(), "y": Y.tolist(),
        "lams": {k: v.tolist() for k, v in LAMS.items()},
        "ce": ce(Z_IN, Y),
        "oe": {"weight": 0.5, "loss": oe(0.5)},
        "energy_oe": [
            {"weight": w, "m_in": a, "m_out": b, "loss": energy_oe(w, a, b)}
            for (w, a, b) in [(0.1, -13.0, -6.0), (0.1, -1.5, -1.0)]
        ],
        "mixoe": [{"lam_per": per, "weight": 5.0, "loss": mixoe(LAMS[per], 5.0)} for per in LAMS],
        "lmoe": [],
        "consistency_grads": [],
    }
    for per, loss, detach, imce in itertools.product(LAMS, ["mse", "kl", "none"], ["logit-mix", "input-mix", "none"], [False, True]):
        out["lmoe"].append({"lam_per": per, "loss_kind": loss, "detach": detach, "input_mix_ce": imce,
                            "weight": 5.0, "c": 0.5, "loss": lmoe(LAMS[per], 5.0, 0.5, loss, detach, imce)})
    for per, loss, detach in itertools.product(LAMS, ["mse", "kl"], ["logit-mix", "input-mix", "none"]):
        lam = LAMS[per]
        f = lambda zi, zo, zx: consistency(zi, zo, zx, lam, loss, detach)
        out["consistency_grads"].append({
            "lam_per": per, "loss_kind": loss, "detach": detach,
            "value": f(Z_IN, Z_OUT, Z_XMIX),
            "d_in": grad(lambda x: f(x, Z_OUT, Z_XMIX), Z_IN).tolist(),
            "d_out": grad(lambda x: f(Z_IN, x, Z_XMIX), Z_OUT).tolist(),
            "d_xmix": grad(lambda x: f(Z_IN, Z_OUT, x), Z_XMIX).tolist(),
        })
    h, w = 6, 5
    x_in = np.arange(h * w, dtype=float).reshape(h, w)
    x_out = -1.0 - x_in
    out["cutmix"] = []
    for lam, cy, cx in [(0.6, 4, 1), (0.3, 0, 4), (0.95, 2, 2), (0.0, 3, 2)]:
        y1, y2, x1, x2, kept = cutmix_box(h, w, lam, cy, cx)
        x_mix = x_in.copy()
        x_mix[y1:y2, x1:x2] = x_out[y1:y2, x1:x2]
        out["cutmix"].append({"h": h, "w": w, "lam": lam, "cy": cy, "cx": cx, "box": [y1, y2, x1, x2],
                              "kept": kept, "x_in": x_in.tolist(), "x_out": x_out.tolist(), "x_mix": x_mix.tolist()})
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
