//! Each kernel against candle's stock ops (or, where candle has no backward pass, against the
//! definition summed by hand): outputs and gradients of sum(y * g) for fixed weights g, across
//! shapes with padding, stride, odd sizes and batch 1. Tolerance: 1e-4 of the largest value.

use candle_core::{DType, Device, Tensor, Var};

fn values(n: usize, seed: f64) -> Vec<f32> {
    (0..n).map(|i| ((i as f64 * 0.731 + seed).sin() * 1.7) as f32).collect()
}

fn var(shape: &[usize], seed: f64) -> Var {
    Var::from_vec(values(shape.iter().product(), seed), shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * scale, "{what}[{i}]: {g}, expected {w} (scale {scale})");
    }
}

/// Weights for sum(y * g), so that every output position has its own gradient.
fn upstream(y: &Tensor) -> Tensor {
    Tensor::from_vec((0..y.elem_count()).map(|i| 0.5 + (i % 13) as f32 * 0.25).collect::<Vec<_>>(), y.shape(), &Device::Cpu).unwrap()
}

fn grads_of(y: &Tensor, vars: &[&Var]) -> Vec<Vec<f32>> {
    let g = (y * upstream(y)).unwrap().sum_all().unwrap().backward().unwrap();
    vars.iter().map(|v| flat(g.get(v.as_tensor()).expect("a gradient"))).collect()
}

/// (batch, in, out, height, width, kernel, stride, padding)
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

const CONVS: [ConvCase; 9] = [
    (2, 3, 4, 7, 9, 3, 1, 1),
    // Images smaller than the kernel, padded to their own size (a ResNet's last layers).
    (2, 3, 2, 1, 1, 3, 1, 1),
    (3, 2, 3, 2, 1, 3, 1, 1),
    (1, 2, 3, 8, 8, 3, 2, 1),
    (3, 4, 5, 6, 6, 1, 2, 0),
    (1, 3, 2, 11, 11, 7, 2, 3),
    (1, 1, 2, 5, 5, 3, 1, 0),
    (2, 3, 4, 6, 5, 1, 2, 0),
    (2, 5, 3, 4, 4, 3, 1, 1),
];

#[test]
fn conv2d_matches_candle_and_the_definition() {
    for &(n, c, o, h, w, k, s, p) in &CONVS {
        let x = var(&[n, c, h, w], 0.1);
        let wt = var(&[o, c, k, k], 0.7);
        let b = var(&[o], 1.3);
        let ours = oodlab_kernels::conv2d(x.as_tensor(), wt.as_tensor(), Some(b.as_tensor()), s, p).unwrap();
        let theirs =
            x.as_tensor().conv2d(wt.as_tensor(), p, s, 1, 1).unwrap().broadcast_add(&b.as_tensor().reshape((1, o, 1, 1)).unwrap()).unwrap();
        let what = format!("conv n{n} c{c} o{o} {h}x{w} k{k} s{s} p{p}");
        close(&what, &flat(&ours), &flat(&theirs));

        // Gradients against the definition: y[b,o,i,j] = bias[o] + Σ w[o,c,di,dj] x[b,c,i s+di-p, j s+dj-p].
        let got = grads_of(&ours, &[&x, &wt, &b]);
        let (ho, wo) = (ours.dim(2).unwrap(), ours.dim(3).unwrap());
        let gv = flat(&upstream(&ours));
        let (xv, wv) = (flat(x.as_tensor()), flat(wt.as_tensor()));
        let (mut dx, mut dw, mut db) = (vec![0f64; xv.len()], vec![0f64; wv.len()], vec![0f64; o]);
        for bi in 0..n {
            for oi in 0..o {
                for i in 0..ho {
                    for j in 0..wo {
                        let g = gv[((bi * o + oi) * ho + i) * wo + j] as f64;
                        db[oi] += g;
                        for ci in 0..c {
                            for di in 0..k {
                                for dj in 0..k {
                                    let (r, q) = ((i * s + di) as isize - p as isize, (j * s + dj) as isize - p as isize);
                                    if r < 0 || q < 0 || r as usize >= h || q as usize >= w {
                                        continue;
                                    }
                                    let xi = ((bi * c + ci) * h + r as usize) * w + q as usize;
                                    let wi = ((oi * c + ci) * k + di) * k + dj;
                                    dx[xi] += g * wv[wi] as f64;
                                    dw[wi] += g * xv[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
        close(&format!("{what} dx"), &got[0], &f(dx));
        close(&format!("{what} dw"), &got[1], &f(dw));
        close(&format!("{what} db"), &got[2], &f(db));
    }
}

#[test]
fn conv2d_without_bias() {
    let x = var(&[2, 3, 5, 5], 0.2);
    let wt = var(&[4, 3, 3, 3], 0.4);
    let ours = oodlab_kernels::conv2d(x.as_tensor(), wt.as_tensor(), None, 1, 1).unwrap();
    let theirs = x.as_tensor().conv2d(wt.as_tensor(), 1, 1, 1, 1).unwrap();
    close("conv without bias", &flat(&ours), &flat(&theirs));
    let (a, b) = (grads_of(&ours, &[&x, &wt]), grads_of(&theirs, &[&x, &wt]));
    close("dx", &a[0], &b[0]);
    close("dw", &a[1], &b[1]);
}

/// Max-pooling by its definition with candle ops: the maximum of the k² strided views of the
/// input padded with -inf (differentiable: candle's max sends the gradient to the maximum).
fn pool_reference(x: &Tensor, k: usize, s: usize, p: usize) -> Tensor {
    let (n, c, h, w) = x.dims4().unwrap();
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let pad = |t: &Tensor, dim: usize, size: usize| {
        let mut shape = t.dims().to_vec();
        shape[dim] = size;
        Tensor::full(f32::NEG_INFINITY, shape, &Device::Cpu).unwrap()
    };
    let x = Tensor::cat(&[&pad(x, 2, p), x, &pad(x, 2, p + s)], 2).unwrap();
    let x = Tensor::cat(&[&pad(&x, 3, p), &x, &pad(&x, 3, p + s)], 3).unwrap();
    let wx = x.dim(3).unwrap();
    let mut views = Vec::new();
    for di in 0..k {
        let rows = x.narrow(2, di, s * ho).unwrap().reshape((n, c, ho, s, wx)).unwrap().narrow(3, 0, 1).unwrap().squeeze(3).unwrap();
        for dj in 0..k {
            views
                .push(rows.narrow(3, dj, s * wo).unwrap().reshape((n, c, ho, wo, s)).unwrap().narrow(4, 0, 1).unwrap().squeeze(4).unwrap());
        }
    }
    Tensor::stack(&views, 4).unwrap().max(4).unwrap()
}

#[test]
fn max_pool_matches_its_definition() {
    // (batch, channels, height, width, kernel, stride, padding)
    for &(n, c, h, w, k, s, p) in
        &[(2, 3, 8, 8, 2, 2, 0), (1, 2, 7, 9, 3, 2, 1), (2, 1, 5, 5, 3, 1, 1), (1, 1, 2, 2, 3, 2, 1), (3, 2, 9, 7, 2, 2, 0)]
    {
        // Distinct values (no ties), some negative: padding must never win.
        let x = var(&[n, c, h, w], 0.3);
        let ours = oodlab_kernels::max_pool2d(x.as_tensor(), k, s, p).unwrap();
        let theirs = pool_reference(x.as_tensor(), k, s, p);
        let what = format!("pool {h}x{w} k{k} s{s} p{p}");
        close(&what, &flat(&ours), &flat(&theirs));
        close(&format!("{what} dx"), &grads_of(&ours, &[&x])[0], &grads_of(&theirs, &[&x])[0]);
        if k == s && p == 0 {
            close(&format!("{what} vs candle"), &flat(&ours), &flat(&x.as_tensor().max_pool2d(k).unwrap()));
        }
    }
}

#[test]
fn relu_matches_candle() {
    let x = var(&[3, 4, 5, 7], 0.9);
    let ours = oodlab_kernels::relu(x.as_tensor()).unwrap();
    let theirs = x.as_tensor().relu().unwrap();
    close("relu", &flat(&ours), &flat(&theirs));
    close("relu dx", &grads_of(&ours, &[&x])[0], &grads_of(&theirs, &[&x])[0]);
}

/// Training-mode batch-norm with candle ops: batch mean and biased variance per channel.
fn bn_reference(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> (Tensor, Tensor, Tensor) {
    let mean = x.mean_keepdim((0, 2, 3)).unwrap();
    let centred = x.broadcast_sub(&mean).unwrap();
    let var = centred.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
    let y = centred.broadcast_div(&(&var + 1e-5).unwrap().sqrt().unwrap()).unwrap();
    let c = gamma.dim(0).unwrap();
    let y = y.broadcast_mul(&gamma.reshape((1, c, 1, 1)).unwrap()).unwrap().broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap()).unwrap();
    (y, mean.flatten_all().unwrap(), var.flatten_all().unwrap())
}

/// [`bn_reference`], then ReLU if asked, then pooling by its definition if given.
fn bn_relu_pool_reference(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    relu: bool,
    pool: Option<(usize, usize, usize)>,
) -> (Tensor, Tensor, Tensor) {
    let (y, mean, variance) = bn_reference(x, gamma, beta);
    let y = if relu { y.relu().unwrap() } else { y };
    let y = match pool {
        Some((k, s, p)) => pool_reference(&y, k, s, p),
        None => y,
    };
    (y, mean, variance)
}

#[test]
fn batch_norm_relu_and_pool_match_candle() {
    // (batch, channels, height, width)
    for &(n, c, h, w) in &[(4, 3, 6, 6), (1, 2, 5, 7), (8, 5, 3, 3), (2, 4, 9, 8)] {
        for (relu, pool) in [(false, None), (true, None), (true, Some((2, 2, 0))), (true, Some((3, 2, 1)))] {
            if let Some((k, _, p)) = pool {
                if h + 2 * p < k || w + 2 * p < k {
                    continue;
                }
            }
            let x = var(&[n, c, h, w], 0.5);
            let (gamma, beta) = (var(&[c], 2.0), var(&[c], 3.0));
            let out = oodlab_kernels::batch_norm_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5, relu, pool).unwrap();
            let (y, mean, variance) = bn_relu_pool_reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), relu, pool);
            let what = format!("bn {n}x{c}x{h}x{w} relu {relu} pool {pool:?}");
            close(&what, &flat(&out.y), &flat(&y));
            close(&format!("{what} mean"), &flat(&out.mean), &flat(&mean));
            close(&format!("{what} var"), &flat(&out.var), &flat(&variance));
            let (a, b) = (grads_of(&out.y, &[&x, &gamma, &beta]), grads_of(&y, &[&x, &gamma, &beta]));
            for (i, name) in ["dx", "dgamma", "dbeta"].iter().enumerate() {
                close(&format!("{what} {name}"), &a[i], &b[i]);
            }
        }
    }
}

#[test]
fn kernels_apply_to_cpu_f32_only() {
    let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(oodlab_kernels::applies(&x));
    assert!(!oodlab_kernels::applies(&x.to_dtype(DType::F64).unwrap()));
}

#[test]
fn batch_norm_of_values_far_from_zero() {
    // A mean 300 times the spread: the one-pass variance must not cancel away.
    let x = Var::from_vec(values(4 * 3 * 5 * 5, 0.5).iter().map(|v| 500.0 + v).collect::<Vec<_>>(), (4, 3, 5, 5), &Device::Cpu).unwrap();
    let (gamma, beta) = (var(&[3], 2.0), var(&[3], 3.0));
    let out = oodlab_kernels::batch_norm_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5, false, None).unwrap();
    let (y, _, variance) = bn_reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor());
    close("var", &flat(&out.var), &flat(&variance));
    // Normalized values are O(1): f32 rounding of values near 500 limits them to about 1e-3.
    for (a, b) in flat(&out.y).iter().zip(flat(&y)) {
        assert!((a - b).abs() < 2e-3, "{a} vs {b}");
    }
}

#[test]
fn conv2d_of_an_input_without_gradient() {
    // The images of a first layer: no input gradient is computed; the kernel's and bias's are.
    let x = Tensor::from_vec(values(2 * 6 * 6, 0.4), (2, 1, 6, 6), &Device::Cpu).unwrap();
    let (wt, b) = (var(&[3, 1, 3, 3], 0.8), var(&[3], 0.2));
    let ours = oodlab_kernels::conv2d(&x, wt.as_tensor(), Some(b.as_tensor()), 1, 1).unwrap();
    let theirs = x.conv2d(wt.as_tensor(), 1, 1, 1, 1).unwrap().broadcast_add(&b.as_tensor().reshape((1, 3, 1, 1)).unwrap()).unwrap();
    let (a, c) = (grads_of(&ours, &[&wt, &b]), grads_of(&theirs, &[&wt, &b]));
    close("dw", &a[0], &c[0]);
    close("db", &a[1], &c[1]);
}

#[test]
fn conv_then_batch_norm_as_one_op_matches_the_two() {
    // The convolutions of CONVS, each followed by batch-norm alone, with ReLU, and with ReLU and
    // pooling; against the convolution kernel (checked against the definition above) followed by
    // batch-norm in candle ops and pooling by its definition.
    for &(n, c, o, h, w, k, s, p) in &CONVS {
        for (relu, pool) in [(false, None), (true, None), (true, Some((2, 2, 0))), (true, Some((3, 2, 1)))] {
            let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            // Batch-norm over two values makes them ±1 whatever they were: every input gradient
            // is 0 up to rounding, nothing to compare.
            if pool.is_some_and(|(pk, _, pp)| ho + 2 * pp < pk || wo + 2 * pp < pk) || n * ho * wo < 3 {
                continue;
            }
            let x = var(&[n, c, h, w], 0.1);
            let (wt, b) = (var(&[o, c, k, k], 0.7), var(&[o], 1.3));
            let (gamma, beta) = (var(&[o], 2.0), var(&[o], 3.0));
            let vars = [&x, &wt, &b, &gamma, &beta];
            let out = oodlab_kernels::conv_bn_train(
                x.as_tensor(),
                wt.as_tensor(),
                Some(b.as_tensor()),
                gamma.as_tensor(),
                beta.as_tensor(),
                (s, p),
                1e-5,
                relu,
                pool,
            )
            .unwrap();
            let u = oodlab_kernels::conv2d(x.as_tensor(), wt.as_tensor(), Some(b.as_tensor()), s, p).unwrap();
            let (y, mean, variance) = bn_relu_pool_reference(&u, gamma.as_tensor(), beta.as_tensor(), relu, pool);
            let what = format!("conv n{n} c{c} o{o} {h}x{w} k{k} s{s} p{p} + bn relu {relu} pool {pool:?}");
            close(&what, &flat(&out.y), &flat(&y));
            close(&format!("{what} mean"), &flat(&out.mean), &flat(&mean));
            close(&format!("{what} var"), &flat(&out.var), &flat(&variance));
            let (ours, theirs) = (grads_of(&out.y, &vars), grads_of(&y, &vars));
            for i in [0, 1, 3, 4] {
                close(&format!("{what} {}", ["dx", "dw", "db", "dgamma", "dbeta"][i]), &ours[i], &theirs[i]);
            }
            // A bias before batch-norm changes nothing: its gradient is 0 up to rounding.
            let scale = theirs[4].iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (i, v) in ours[2].iter().enumerate() {
                assert!(v.abs() <= 1e-4 * scale, "{what} db[{i}] = {v} (dbeta's scale {scale})");
            }
        }
    }
}

#[test]
fn conv_then_batch_norm_without_bias_or_input_gradient() {
    // The first layer's case: images (no gradient) and a convolution without bias.
    let x = Tensor::from_vec(values(3 * 2 * 7 * 7, 0.4), (3, 2, 7, 7), &Device::Cpu).unwrap();
    let (wt, gamma, beta) = (var(&[4, 2, 3, 3], 0.8), var(&[4], 2.0), var(&[4], 3.0));
    let out =
        oodlab_kernels::conv_bn_train(&x, wt.as_tensor(), None, gamma.as_tensor(), beta.as_tensor(), (1, 1), 1e-5, true, Some((2, 2, 0)))
            .unwrap();
    let u = x.conv2d(wt.as_tensor(), 1, 1, 1, 1).unwrap();
    let (y, _, _) = bn_reference(&u, gamma.as_tensor(), beta.as_tensor());
    let y = pool_reference(&y.relu().unwrap(), 2, 2, 0);
    close("conv+bn", &flat(&out.y), &flat(&y));
    let vars = [&wt, &gamma, &beta];
    let (ours, theirs) = (grads_of(&out.y, &vars), grads_of(&y, &vars));
    for (i, name) in ["dw", "dgamma", "dbeta"].iter().enumerate() {
        close(name, &ours[i], &theirs[i]);
    }
}
