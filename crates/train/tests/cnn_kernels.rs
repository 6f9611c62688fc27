//! The CNN's training step with the CPU kernels against the same step with candle's own ops
//! (`oodlab_kernels::set_enabled(false)`, the GPU's path): the loss, every parameter's gradient and
//! the batch-norm running statistics.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use oodlab_spec::{Arch, ModelSettings};
use oodlab_train::model::{build, init_seeded};

/// The kernels' switch is the process's: one step at a time (the tests run on several threads).
static SWITCH: Mutex<()> = Mutex::new(());

/// Loss, gradients and running statistics (by variable name) of one training-mode step on `x`.
fn step(kernels: bool, channels: &[usize], x: &Tensor) -> BTreeMap<String, Vec<f32>> {
    let _one_at_a_time = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    oodlab_kernels::set_enabled(kernels);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let settings = ModelSettings { arch: Arch::Cnn, channels: channels.to_vec(), pretrained: None };
    let net = build(&settings, 1, 6, DType::F32, vb).unwrap();
    init_seeded(&varmap, 7, Arch::Cnn).unwrap();
    let n = x.dim(0).unwrap();
    let labels = Tensor::from_vec((0..n as u32).map(|i| i % 6).collect::<Vec<_>>(), n, &Device::Cpu).unwrap();
    let logits = net.forward_t(x, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    let mut out = BTreeMap::new();
    out.insert("loss".to_string(), vec![loss.to_scalar::<f32>().unwrap()]);
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let values = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            // The running statistics get no gradient: compare their updated values.
            None => var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        };
        out.insert(name.clone(), values);
    }
    oodlab_kernels::set_enabled(true);
    out
}

/// `n` images whose pixels are `f(image, row, column)`.
fn images(n: usize, f: impl Fn(usize, usize, usize) -> f64) -> Tensor {
    let x: Vec<f32> = (0..n * 28 * 28).map(|i| f(i / 784, (i / 28) % 28, i % 28) as f32).collect();
    Tensor::from_vec(x, (n, 1, 28, 28), &Device::Cpu).unwrap()
}

fn largest(v: &[f32]) -> f32 {
    v.iter().fold(1e-6f32, |m, v| m.max(v.abs()))
}

/// Each tensor of `ours` against `stock` by `close`; the biases of the convolutions followed by
/// batch-norm apart: they change nothing, so their gradient is 0 up to rounding in both.
fn compare(what: &str, ours: &BTreeMap<String, Vec<f32>>, stock: &BTreeMap<String, Vec<f32>>, close: impl Fn(&[f32], &[f32]) -> bool) {
    assert_eq!(ours.keys().collect::<Vec<_>>(), stock.keys().collect::<Vec<_>>());
    for (name, want) in stock {
        let got = &ours[name];
        if let Some(conv) = name.strip_suffix(".bias").filter(|c| ["conv1", "conv2"].contains(c)) {
            let scale = largest(&stock[&format!("{conv}.weight")]);
            assert!(got.iter().chain(want).all(|v| v.abs() <= 1e-4 * scale), "{what}: {name}: {got:?} / {want:?}");
            continue;
        }
        assert!(close(got, want), "{what}: {name} = {got:?}, candle's ops give {want:?}");
    }
}

#[test]
fn cnn_step_with_the_kernels_equals_the_step_with_candles_ops() {
    // Patterned images, no two values alike: every value to 1e-4 of its tensor's largest.
    let within = |got: &[f32], want: &[f32]| {
        let scale = largest(want);
        got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-4 * scale)
    };
    for (channels, n) in [(&[16, 32, 64][..], 8), (&[4, 8, 8][..], 1)] {
        let x = images(n, |img, r, c| (((img * 784 + r * 28 + c) as f64) * 0.377).sin() * 1.3);
        compare(&format!("{channels:?}, batch {n}"), &step(true, channels, &x), &step(false, channels, &x), within);
    }
}

#[test]
fn cnn_step_on_flat_backgrounds_sends_each_window_one_gradient() {
    // A flat background around a patterned square, as Fashion-MNIST's: many pooling windows hold
    // their maximum several times, and the gradient must go to the first one only (PyTorch's;
    // candle's `max` sent it to every one, four times the gradient in a flat 2x2 window, which
    // made batch-norm's gradients 10 to 20 times too large here). Values a rounding apart can
    // change which element of a window wins between the two paths, so the gradients are compared
    // as a whole: 5% of their norm.
    let x = images(8, |img, r, c| {
        if (7..21).contains(&r) && (7..21).contains(&c) {
            (((img * 784 + r * 28 + c) as f64) * 0.377).sin() * 1.3
        } else {
            -0.81
        }
    });
    let near = |got: &[f32], want: &[f32]| {
        let diff: f64 = got.iter().zip(want).map(|(g, w)| ((g - w) as f64).powi(2)).sum();
        let norm: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
        diff.sqrt() <= 0.05 * norm.sqrt()
    };
    compare("flat background", &step(true, &[16, 32, 64], &x), &step(false, &[16, 32, 64], &x), near);
}
