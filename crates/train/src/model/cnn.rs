//! The CNN of DESIGN.md: conv+BN+ReLU+pool, conv+BN+ReLU+pool, conv+ReLU, global average pool,
//! linear. Channels are configurable; the reference network uses 32-64-128.

use candle_core::{DType, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use oodlab_spec::{Arch, Stage};

use super::layers::{relu, Bn, Conv, Fc};

pub struct Cnn {
    conv1: Conv,
    bn1: Bn,
    conv2: Conv,
    bn2: Bn,
    conv3: Conv,
    fc: Fc,
}

impl Cnn {
    /// `in_channels` of the images (1 or 3); `channels` the three conv widths; `classes` the
    /// number of logits; convolutions and the head compute in `compute` (f32 unless mixed).
    pub fn new(in_channels: usize, channels: &[usize], classes: usize, compute: DType, vb: VarBuilder) -> Result<Cnn> {
        Ok(Cnn {
            conv1: Conv::new(in_channels, channels[0], 3, 1, 1, true, compute, vb.pp("conv1"))?,
            bn1: Bn::new(channels[0], vb.pp("bn1"))?,
            conv2: Conv::new(channels[0], channels[1], 3, 1, 1, true, compute, vb.pp("conv2"))?,
            bn2: Bn::new(channels[1], vb.pp("bn2"))?,
            conv3: Conv::new(channels[1], channels[2], 3, 1, 1, true, compute, vb.pp("conv3"))?,
            fc: Fc::new(channels[2], classes, compute, vb.pp("fc"))?,
        })
    }

    /// The penultimate features `(b, channels[2])`: the input of the last linear layer.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.span(x, Stage::Input, Stage::Features, train)
    }

    /// The layers after stage `from` up to stage `to` (the stages of [`Arch::stages`]),
    /// applied to `x`, the output of `from`. The whole network is `span(x, Input, Logits)`.
    pub fn span(&self, x: &Tensor, from: Stage, to: Stage, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for &stage in super::stages_between(Arch::Cnn, from, to)? {
            x = match stage {
                Stage::Block1 => self.bn1.forward_conv_relu_pool_t(&self.conv1, &x, train, (2, 2, 0))?,
                Stage::Block2 => self.bn2.forward_conv_relu_pool_t(&self.conv2, &x, train, (2, 2, 0))?,
                Stage::Block3 => relu(&self.conv3.forward(&x)?)?,
                Stage::Features => x.mean((2, 3))?,
                Stage::Logits => self.fc.forward(&x)?,
                other => unreachable!("stages_between gives the CNN's stages only, not {other:?}"),
            };
        }
        Ok(x)
    }

    pub fn head(&self) -> &Fc {
        &self.fc
    }
}

impl ModuleT for Cnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.span(x, Stage::Input, Stage::Logits, train)
    }
}
