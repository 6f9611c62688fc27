//! ResNet-18/50 against torchvision (values from scripts/reference/resnet_torchvision.py, kept in
//! tests/fixtures/resnet_torchvision.json), the overlapping max-pool, loading pretrained weights,
//! and mixed precision.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use oodlab_kernels::ops::candle::max_pool_after_relu;
use oodlab_spec::{Arch, ModelSettings};
use oodlab_train::model::{build, init_seeded, load_pretrained, Network};
use oodlab_train::scaler::GradScaler;
use serde_json::Value;

fn model(arch: Arch, cin: usize, classes: usize, compute: DType) -> (VarMap, Network) {
    model_in(arch, cin, classes, DType::F32, compute)
}

/// A network whose weights are `master` values computing in `compute`.
fn model_in(arch: Arch, cin: usize, classes: usize, master: DType, compute: DType) -> (VarMap, Network) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, master, &Device::Cpu);
    let settings = ModelSettings { arch, channels: vec![8, 16, 32], pretrained: None };
    let net = build(&settings, cin, classes, compute, vb).unwrap();
    (varmap, net)
}

/// The weights of the reference script's formulas (its docstring), in sorted-name order.
fn set_formula_weights(varmap: &VarMap) {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (k, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let values: Vec<f64> = (0..var.elem_count())
            .map(|i| {
                let s = (0.7 * i as f64 + 1.3 * k as f64 + 0.1).sin();
                let v = if name.ends_with("running_var") {
                    1.0 + 0.5 * s * s
                } else if name.ends_with("running_mean") || name.ends_with("bias") {
                    0.1 * s
                } else if dims.len() == 4 {
                    s * (4.0 / (dims[0] * dims[2] * dims[3]) as f64).sqrt()
                } else if dims.len() == 2 {
                    s / (dims[1] as f64).sqrt()
                } else {
                    1.0 + 0.1 * s
                };
                // Rounded to f32, as the reference script does.
                v as f32 as f64
            })
            .collect();
        let t = Tensor::from_vec(values, dims.as_slice(), &Device::Cpu).unwrap().to_dtype(var.dtype()).unwrap();
        var.set(&t).unwrap();
    }
}

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resnet_torchvision.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * scale, "{what}[{i}]: {g}, expected {w} (scale {scale})");
    }
}

fn check_against_torchvision(arch: Arch, key: &str) {
    let r = &reference()[key];
    // Parameter names and shapes: torchvision's 1000-class model, less its batch counters.
    let (varmap, _) = model(arch, 3, 1000, DType::F32);
    let ours: HashMap<String, Vec<usize>> = varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect();
    let theirs: HashMap<String, Vec<usize>> = r["names"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, v)| (k.clone(), v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()))
        .collect();
    assert_eq!(ours, theirs);

    // In f64, as the reference: the comparison then checks the network, not f32 rounding (which
    // training-mode batch-norm over layer4's 8 values per channel amplifies to about 5e-4).
    let (varmap, net) = model_in(arch, 3, 5, DType::F64, DType::F64);
    set_formula_weights(&varmap);
    let n = 2 * 3 * 64 * 64;
    let x: Vec<f64> = (0..n).map(|i| (0.013 * i as f64 + 0.5).sin() as f32 as f64).collect();
    let x = Tensor::from_vec(x, (2, 3, 64, 64), &Device::Cpu).unwrap();
    let y = Tensor::new(&[1u32, 3], &Device::Cpu).unwrap();
    let to_vec = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();

    let eval = net.forward_t(&x, false).unwrap();
    assert_close("eval logits", &to_vec(&eval), &floats(&r["eval_logits"]), 1e-9);
    let logits = net.forward_t(&x, true).unwrap();
    assert_close("train logits", &to_vec(&logits), &floats(&r["train_logits"]), 1e-9);
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    let want = r["loss"].as_f64().unwrap();
    assert!((loss.to_scalar::<f64>().unwrap() - want).abs() < 1e-9 * want.abs().max(1.0), "loss");
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    for (name, g) in r["grads"].as_object().unwrap() {
        let grad = grads.get(data[name].as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let v = to_vec(grad);
        let (sum, sumsq) = (v.iter().sum::<f64>(), v.iter().map(|a| a * a).sum::<f64>());
        let (want_sum, want_sumsq) = (g["sum"].as_f64().unwrap(), g["sumsq"].as_f64().unwrap());
        // The sum of a gradient may cancel to near zero; its squared norm sets the scale.
        assert!((sum - want_sum).abs() <= 1e-9 * want_sumsq.sqrt() * (v.len() as f64).sqrt(), "{name} grad sum {sum} vs {want_sum}");
        assert!((sumsq - want_sumsq).abs() <= 1e-9 * want_sumsq, "{name} grad sumsq {sumsq} vs {want_sumsq}");
    }
    let mean = to_vec(&data["bn1.running_mean"].as_tensor().narrow(0, 0, 8).unwrap());
    assert_close("bn1 running mean", &mean, &floats(&r["bn1_running_mean"]), 1e-9);
}

#[test]
fn resnet18_matches_torchvision() {
    check_against_torchvision(Arch::Resnet18, "resnet18");
}

#[test]
fn resnet50_matches_torchvision() {
    check_against_torchvision(Arch::Resnet50, "resnet50");
}

/// Brute force over windows, with -inf padding as PyTorch: values and the arg-max of each window.
fn brute_pool(x: &[f32], (n, c, h, w): (usize, usize, usize, usize), k: usize, s: usize, p: usize) -> (Vec<f32>, Vec<usize>) {
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let (mut out, mut arg) = (Vec::new(), Vec::new());
    for plane in 0..n * c {
        for i in 0..ho {
            for j in 0..wo {
                let mut best = (f32::NEG_INFINITY, 0);
                for di in 0..k {
                    for dj in 0..k {
                        let (r, q) = ((i * s + di) as isize - p as isize, (j * s + dj) as isize - p as isize);
                        if r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w {
                            let at = plane * h * w + r as usize * w + q as usize;
                            if x[at] > best.0 {
                                best = (x[at], at);
                            }
                        }
                    }
                }
                out.push(best.0);
                arg.push(best.1);
            }
        }
    }
    (out, arg)
}

#[test]
fn overlapping_max_pool_and_its_gradient() {
    let cases = [(7, 9, 3, 2, 1), (8, 8, 3, 2, 1), (5, 6, 2, 2, 0), (1, 1, 3, 2, 1), (6, 7, 3, 1, 1)];
    for (&(h, w, k, s, p), ties) in cases.iter().flat_map(|c| [(c, false), (c, true)]) {
        let dims = (2, 3, h, w);
        // Non-negative values (the pool follows a ReLU): distinct, so each window has one
        // arg-max, or three positive levels, so most windows hold their maximum more than once
        // and the gradient must go to the first only (PyTorch's; candle's `max` sends it to all).
        let value = |i: usize| if ties { 1.0 + (i * 7 % 3) as f32 } else { ((i * 37 % 101) as f32) / 10.0 };
        let x: Vec<f32> = (0..2 * 3 * h * w).map(value).collect();
        let var = Var::from_vec(x.clone(), dims, &Device::Cpu).unwrap();
        let out = max_pool_after_relu(var.as_tensor(), k, s, p).unwrap();
        let (want, arg) = brute_pool(&x, dims, k, s, p);
        assert_eq!(out.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want, "{h}x{w} k{k} s{s} p{p}");
        // d/dx of sum(out * g): each window sends its weight to its arg-max, overlaps add up.
        let g: Vec<f32> = (0..want.len()).map(|i| 1.0 + i as f32).collect();
        let gt = Tensor::from_vec(g.clone(), out.shape(), &Device::Cpu).unwrap();
        let grads = (out * gt).unwrap().sum_all().unwrap().backward().unwrap();
        let mut expect = vec![0f32; x.len()];
        for (gi, a) in g.iter().zip(arg) {
            expect[a] += gi;
        }
        let got = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got, expect, "gradient, {h}x{w} k{k} s{s} p{p}, ties {ties}");
    }
}

fn save(varmap: &VarMap, extra: Vec<(String, Tensor)>, path: &std::path::Path) {
    let mut all: HashMap<String, Tensor> = varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    all.extend(extra);
    candle_core::safetensors::save(&all, path).unwrap();
}

#[test]
fn pretrained_weights_load_every_tensor_but_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resnet18.safetensors");
    // A torchvision-like checkpoint: 1000-class head and batch-norm counters.
    let (source, _) = model(Arch::Resnet18, 3, 1000, DType::F32);
    init_seeded(&source, 1, Arch::Resnet18).unwrap();
    let counters = vec![("bn1.num_batches_tracked".to_string(), Tensor::new(&[7i64], &Device::Cpu).unwrap())];
    save(&source, counters, &file);

    let (target, _) = model(Arch::Resnet18, 3, 6, DType::F32);
    init_seeded(&target, 2, Arch::Resnet18).unwrap();
    let head_before = target.data().lock().unwrap()["fc.weight"].as_tensor().copy().unwrap();
    let loaded = load_pretrained(&target, &file, Arch::Resnet18).unwrap();
    let (src, dst) = (source.data().lock().unwrap(), target.data().lock().unwrap());
    assert_eq!(loaded, dst.len() - 2);
    for (name, var) in dst.iter() {
        let got = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        if name.starts_with("fc.") {
            continue;
        }
        assert_eq!(got, src[name].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), "{name}");
    }
    let head = dst["fc.weight"].as_tensor();
    assert_eq!(head.dims(), &[6, 512]);
    assert_eq!(head.flatten_all().unwrap().to_vec1::<f32>().unwrap(), head_before.flatten_all().unwrap().to_vec1::<f32>().unwrap());
}

#[test]
fn mismatched_pretrained_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r50 = dir.path().join("resnet50.safetensors");
    let (source, _) = model(Arch::Resnet50, 3, 10, DType::F32);
    save(&source, Vec::new(), &r50);
    let (target, _) = model(Arch::Resnet18, 3, 10, DType::F32);
    let before = target.data().lock().unwrap()["conv1.weight"].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let err = load_pretrained(&target, &r50, Arch::Resnet18).unwrap_err();
    assert!(err.contains("resnet50.safetensors does not fit model.arch resnet18"), "{err}");
    assert!(err.contains("with another shape: layer1.0.conv1.weight is [64, 64, 1, 1] in the file, [64, 64, 3, 3] in the model"), "{err}");
    assert!(err.contains("not in the model: layer1.0.bn3.bias"), "{err}");
    // Nothing is loaded from a file that does not fit.
    let after = target.data().lock().unwrap()["conv1.weight"].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(before, after);

    // RGB weights for greyscale images.
    let r18 = dir.path().join("resnet18.safetensors");
    let (rgb, _) = model(Arch::Resnet18, 3, 10, DType::F32);
    save(&rgb, Vec::new(), &r18);
    let (grey, _) = model(Arch::Resnet18, 1, 10, DType::F32);
    let err = load_pretrained(&grey, &r18, Arch::Resnet18).unwrap_err();
    assert!(err.contains("1 with another shape: conv1.weight is [64, 3, 7, 7] in the file, [64, 1, 7, 7] in the model"), "{err}");

    // A file missing tensors, and one that is not safetensors at all.
    let partial = dir.path().join("partial.safetensors");
    let mut some: HashMap<String, Tensor> = HashMap::new();
    some.insert("conv1.weight".into(), Tensor::zeros((64, 3, 7, 7), DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&some, &partial).unwrap();
    let err = load_pretrained(&rgb, &partial, Arch::Resnet18).unwrap_err();
    assert!(err.contains("99 missing: bn1.bias, bn1.running_mean, bn1.running_var, bn1.weight and 95 more"), "{err}");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert!(load_pretrained(&rgb, &junk, Arch::Resnet18).unwrap_err().starts_with(&format!("cannot read {}", junk.display())));
}

#[test]
fn mixed_precision_keeps_f32_weights_and_tracks_f32_results() {
    // f16 (candle's CPU matrix product has no bf16): logits and gradients near those of f32, and
    // the gradients arrive in f32 on the f32 variables.
    let x: Vec<f32> = (0..4 * 28 * 28).map(|i| ((i as f64) * 0.37).sin() as f32).collect();
    let x = Tensor::from_vec(x, (4, 1, 28, 28), &Device::Cpu).unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
    let mut results = Vec::new();
    for compute in [DType::F32, DType::F16] {
        let (varmap, net) = model(Arch::Cnn, 1, 5, compute);
        init_seeded(&varmap, 3, Arch::Cnn).unwrap();
        let logits = net.forward_t(&x, true).unwrap();
        assert_eq!(logits.dtype(), DType::F32);
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        // f16 with loss scaling, as a run trains.
        let mut scaler = GradScaler::default();
        let mut grads = scaler.backward(&loss).unwrap();
        assert!(scaler.unscale(&mut grads, &varmap.all_vars()).unwrap());
        let data = varmap.data().lock().unwrap();
        let g = grads.get(data["conv1.weight"].as_tensor()).unwrap();
        assert_eq!((data["conv1.weight"].dtype(), g.dtype()), (DType::F32, DType::F32));
        results.push((
            logits.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
            g.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
        ));
    }
    assert_close("f16 logits", &results[1].0, &results[0].0, 1e-2);
    // candle's CPU f16 matrix product also accumulates in f16, so over the 3136 positions of the
    // weight gradient the error grows to about 12% of the gradient's norm; it still points the
    // same way. (A gradient lost in the casts, or left scaled, would be off by 100% or 65536x.)
    let (g16, g32) = (&results[1].1, &results[0].1);
    let err = g16.iter().zip(g32).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    let norm = g32.iter().map(|b| b * b).sum::<f64>().sqrt();
    let cos = g16.iter().zip(g32).map(|(a, b)| a * b).sum::<f64>() / (norm * g16.iter().map(|a| a * a).sum::<f64>().sqrt());
    assert!(err / norm < 0.2 && cos > 0.98, "f16 conv1 gradient: relative error {}, cosine {cos}", err / norm);
}

#[test]
fn unfolded_convolution_matches_candles_with_gradients() {
    use oodlab_kernels::ops::candle::conv_unfold;
    // (batch, in, out, height, width, kernel, stride, padding)
    for &(n, ci, co, h, w, k, s, p) in &[
        (2, 3, 4, 7, 9, 3, 1, 1),
        (1, 2, 3, 8, 8, 3, 2, 1),
        (2, 4, 5, 6, 5, 1, 2, 0),
        (1, 3, 2, 11, 11, 7, 2, 3),
        (3, 2, 2, 5, 5, 1, 1, 0),
    ] {
        let xs: Vec<f64> = (0..n * ci * h * w).map(|i| (i as f64 * 0.37).sin()).collect();
        let ws: Vec<f64> = (0..co * ci * k * k).map(|i| (i as f64 * 0.91 + 0.3).cos()).collect();
        let x = Var::from_vec(xs, (n, ci, h, w), &Device::Cpu).unwrap();
        let wt = Var::from_vec(ws, (co, ci, k, k), &Device::Cpu).unwrap();
        let ours = conv_unfold(x.as_tensor(), wt.as_tensor(), s, p).unwrap();
        let theirs = x.as_tensor().conv2d(wt.as_tensor(), p, s, 1, 1).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_close("conv", &flat(&ours), &flat(&theirs), 1e-12);
        // Gradients of sum(y * g) against the convolution's definition, summed by hand (candle's
        // own conv2d backward fails when the stride does not divide the padded size evenly).
        let (ho, wo) = (ours.dim(2).unwrap(), ours.dim(3).unwrap());
        let gv: Vec<f64> = (0..ours.elem_count()).map(|i| 1.0 + (i % 7) as f64).collect();
        let g = Tensor::from_vec(gv.clone(), ours.shape(), &Device::Cpu).unwrap();
        let grads = (&ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let (xv, wv) = (flat(x.as_tensor()), flat(wt.as_tensor()));
        let (mut dx, mut dw) = (vec![0.0; xv.len()], vec![0.0; wv.len()]);
        for b in 0..n {
            for o in 0..co {
                for i in 0..ho {
                    for j in 0..wo {
                        let gy = gv[((b * co + o) * ho + i) * wo + j];
                        for c in 0..ci {
                            for di in 0..k {
                                for dj in 0..k {
                                    let (r, q) = ((i * s + di) as isize - p as isize, (j * s + dj) as isize - p as isize);
                                    if r < 0 || q < 0 || r as usize >= h || q as usize >= w {
                                        continue;
                                    }
                                    let xi = ((b * ci + c) * h + r as usize) * w + q as usize;
                                    let wi = ((o * ci + c) * k + di) * k + dj;
                                    dx[xi] += gy * wv[wi];
                                    dw[wi] += gy * xv[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_close("input gradient", &flat(grads.get(x.as_tensor()).unwrap()), &dx, 1e-12);
        assert_close("weight gradient", &flat(grads.get(wt.as_tensor()).unwrap()), &dw, 1e-12);
    }
}

#[test]
fn convolutions_where_candles_backward_fails_are_unfolded() {
    use oodlab_train::model::layers::Conv;
    // 6x5 input, 1x1 kernel, stride 2: the height leaves a remainder of 1, the width none; candle's
    // own backward fails here, the layer's does not.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let conv = Conv::new(4, 5, 1, 2, 0, false, DType::F32, vb.pp("c")).unwrap();
    init_seeded(&varmap, 0, Arch::Resnet18).unwrap();
    let x = Var::from_vec((0..2 * 4 * 6 * 5).map(|i| (i as f32 * 0.3).sin()).collect::<Vec<_>>(), (2, 4, 6, 5), &Device::Cpu).unwrap();
    let y = conv.forward(x.as_tensor()).unwrap();
    assert_eq!(y.dims(), &[2, 5, 3, 3]);
    let w = varmap.data().lock().unwrap()["c.weight"].as_tensor().clone();
    assert!(x.as_tensor().conv2d(&w, 0, 2, 1, 1).unwrap().sum_all().unwrap().backward().is_err(), "candle's backward fails here");
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(grads.get(x.as_tensor()).unwrap().dims(), &[2, 4, 6, 5]);
}

#[test]
fn the_cnn_on_kernels_and_on_candle_ops_agree() {
    // f32 on the CPU goes through oodlab-kernels; f64 through the candle ops a GPU uses. Same
    // weights, same batch: the same logits, loss gradient and batch-norm statistics.
    let (v32, net32) = model_in(Arch::Cnn, 1, 5, DType::F32, DType::F32);
    let (v64, net64) = model_in(Arch::Cnn, 1, 5, DType::F64, DType::F64);
    init_seeded(&v32, 4, Arch::Cnn).unwrap();
    for (name, var) in v64.data().lock().unwrap().iter() {
        var.set(&v32.data().lock().unwrap()[name].as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
    }
    let x: Vec<f32> = (0..6 * 28 * 28).map(|i| ((i as f64) * 0.37).sin() as f32).collect();
    let x = Tensor::from_vec(x, (6, 1, 28, 28), &Device::Cpu).unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 3, 4, 0], &Device::Cpu).unwrap();
    let mut out = Vec::new();
    for (varmap, net, x) in [(&v32, &net32, x.clone()), (&v64, &net64, x.to_dtype(DType::F64).unwrap())] {
        let logits = net.forward_t(&x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        let f = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        out.push((f(&logits), f(grads.get(data["conv1.weight"].as_tensor()).unwrap()), f(data["bn2.running_var"].as_tensor())));
    }
    assert_close("logits", &out[0].0, &out[1].0, 1e-4);
    assert_close("conv1 gradient", &out[0].1, &out[1].1, 1e-3);
    assert_close("bn2 running variance", &out[0].2, &out[1].2, 1e-4);
}
