//! The CNN of DESIGN.md: conv+BN+ReLU+pool, conv+BN+ReLU+pool, conv+ReLU, global average pool,
//! linear. Channels are configurable; the reference network uses 32-64-128.

use candle_core::{DType, Result, Tensor};
use candle_nn::{batch_norm, conv2d, linear, BatchNorm, Conv2d, Conv2dConfig, Linear, Module, ModuleT, VarBuilder, VarMap};
use rand::Rng;

pub struct Cnn {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    fc: Linear,
}

impl Cnn {
    /// `in_channels` of the images (1 or 3); `channels` the three conv widths; `classes` the
    /// number of logits.
    pub fn new(in_channels: usize, channels: &[usize], classes: usize, vb: VarBuilder) -> Result<Cnn> {
        let same = Conv2dConfig { padding: 1, ..Default::default() };
        let bn = candle_nn::BatchNormConfig { eps: 1e-5, momentum: 0.1, ..Default::default() };
        Ok(Cnn {
            conv1: conv2d(in_channels, channels[0], 3, same, vb.pp("conv1"))?,
            bn1: batch_norm(channels[0], bn, vb.pp("bn1"))?,
            conv2: conv2d(channels[0], channels[1], 3, same, vb.pp("conv2"))?,
            bn2: batch_norm(channels[1], bn, vb.pp("bn2"))?,
            conv3: conv2d(channels[1], channels[2], 3, same, vb.pp("conv3"))?,
            fc: linear(channels[2], classes, vb.pp("fc"))?,
        })
    }
}

impl ModuleT for Cnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.conv1.forward(x)?.apply_t(&self.bn1, train)?.relu()?.max_pool2d(2)?;
        let x = self.conv2.forward(&x)?.apply_t(&self.bn2, train)?.relu()?.max_pool2d(2)?;
        let x = self.conv3.forward(&x)?.relu()?;
        let x = x.mean((2, 3))?;
        self.fc.forward(&x)
    }
}

/// Seeded initialisation, as PyTorch's defaults for conv and linear layers: weights and biases
/// uniform in ±1/sqrt(fan_in). candle's CPU generator cannot be seeded, so every weight is
/// overwritten from a ChaCha stream, in name order, to make runs reproducible.
pub fn init_seeded(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = oodlab_data::order::rng(seed, "init");
    for name in names {
        let Some(layer) = name.strip_suffix(".weight").or_else(|| name.strip_suffix(".bias")) else { continue };
        let Some(weight) = data.get(&format!("{layer}.weight")) else { continue };
        if weight.rank() < 2 {
            continue; // batch-norm scale and shift keep their 1 and 0
        }
        let fan_in: usize = weight.dims()[1..].iter().product();
        let bound = 1.0 / (fan_in as f64).sqrt();
        let var = &data[name];
        let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.random_range(-bound..bound) as f32).collect();
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(DType::F32)?)?;
    }
    Ok(())
}
