//! Time of each kernel, forward and backward, at the shapes of the reference network's training
//! step (DESIGN.md: conv 32-64-128 with batch-norm, ReLU and max-pool, 1x28x28, batch 128), to see
//! where a step's time goes (docs/performance.md):
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release -p oodlab-kernels --example op_times
//! ```
//!
//! The backward time is that of `y.backward()` (candle starts it from a gradient of ones), less
//! the forward; it includes what candle's backward pass adds around the kernels: a zeroed
//! gradient per input, added into.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};

const REPEATS: usize = 15;

/// Median seconds of `f` over `REPEATS` calls after two warm-up calls.
fn median(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    f()?;
    let mut times = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[REPEATS / 2])
}

/// Forward and forward+backward times of `op` on variables of the given shapes.
fn time(name: &str, shapes: &[&[usize]], op: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<(f64, f64)> {
    let dev = Device::Cpu;
    let vars: Vec<Var> = shapes.iter().map(|s| Var::randn(0f32, 1f32, *s, &dev)).collect::<Result<_>>()?;
    let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let fwd = median(|| op(&inputs).map(|_| ()))?;
    let both = median(|| op(&inputs)?.backward().map(|_| ()))?;
    println!("{name:<34} forward {:>7.2} ms  backward {:>7.2} ms", fwd * 1e3, (both - fwd) * 1e3);
    Ok((fwd, both - fwd))
}

fn main() -> Result<()> {
    let n = 128;
    let mut total = (0.0, 0.0);
    let mut add = |t: (f64, f64)| {
        total.0 += t.0;
        total.1 += t.1;
    };
    // As the network runs them: convolution, batch-norm, ReLU and pooling as one op; conv1's
    // input needs no gradient (the images: a plain tensor, not a variable).
    let images = Tensor::randn(0f32, 1f32, (n, 1, 28, 28), &Device::Cpu)?;
    let conv_bn = |x: &Tensor, v: &[Tensor]| -> Result<Tensor> {
        Ok(oodlab_kernels::conv_bn_train(x, &v[0], Some(&v[1]), &v[2], &v[3], (1, 1), 1e-5, true, Some((2, 2, 0)))?.y)
    };
    add(time("conv1+bn1+relu+pool 1->32 28x28", &[&[32, 1, 3, 3], &[32], &[32], &[32]], |v| conv_bn(&images, v))?);
    add(time("conv2+bn2+relu+pool 32->64 14x14", &[&[n, 32, 14, 14], &[64, 32, 3, 3], &[64], &[64], &[64]], |v| conv_bn(&v[0], &v[1..]))?);
    add(time("conv3 64->128 7x7", &[&[n, 64, 7, 7], &[128, 64, 3, 3], &[128]], |v| {
        oodlab_kernels::conv2d(&v[0], &v[1], Some(&v[2]), 1, 1)
    })?);
    add(time("relu 128x7x7", &[&[n, 128, 7, 7]], |v| oodlab_kernels::relu(&v[0]))?);
    println!("{:<34} forward {:>7.2} ms  backward {:>7.2} ms", "total", total.0 * 1e3, total.1 * 1e3);
    // The same layers as separate ops, for comparison.
    time("conv1 1->32 28x28 (no input grad)", &[&[32, 1, 3, 3], &[32]], |v| oodlab_kernels::conv2d(&images, &v[0], Some(&v[1]), 1, 1))?;
    time("bn1+relu+pool 32x28x28", &[&[n, 32, 28, 28], &[32], &[32]], |v| {
        Ok(oodlab_kernels::batch_norm_train(&v[0], &v[1], &v[2], 1e-5, true, Some((2, 2, 0)))?.y)
    })?;
    time("conv2 32->64 14x14", &[&[n, 32, 14, 14], &[64, 32, 3, 3], &[64]], |v| oodlab_kernels::conv2d(&v[0], &v[1], Some(&v[2]), 1, 1))?;
    time("bn2+relu+pool 64x14x14", &[&[n, 64, 14, 14], &[64], &[64]], |v| {
        Ok(oodlab_kernels::batch_norm_train(&v[0], &v[1], &v[2], 1e-5, true, Some((2, 2, 0)))?.y)
    })?;
    Ok(())
}
