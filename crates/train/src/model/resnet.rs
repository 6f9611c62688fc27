//! torchvision's ResNet-18 and ResNet-50 (`torchvision.models.resnet`), with its parameter names
//! so that its weights load as they are: `conv1`, `bn1`, `layer{1..4}.{i}.{conv,bn}{1..3}`,
//! `layer{j}.0.downsample.{0,1}`, `fc`. Bottlenecks stride on the 3x3 convolution (ResNet v1.5,
//! as torchvision).

use candle_core::{DType, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use oodlab_spec::{Arch, Stage};

use super::layers::{Bn, Conv, Fc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    D18,
    D50,
}

impl Depth {
    fn blocks(self) -> [usize; 4] {
        match self {
            Depth::D18 => [2, 2, 2, 2],
            Depth::D50 => [3, 4, 6, 3],
        }
    }

    fn expansion(self) -> usize {
        match self {
            Depth::D18 => 1,
            Depth::D50 => 4,
        }
    }

    /// Width of the features before the head.
    pub fn features(self) -> usize {
        512 * self.expansion()
    }
}

/// A residual block: basic (two 3x3) or bottleneck (1x1, 3x3, 1x1), with a projection shortcut
/// when the shape changes.
struct Block {
    convs: Vec<(Conv, Bn)>,
    downsample: Option<(Conv, Bn)>,
}

impl Block {
    fn new(depth: Depth, cin: usize, planes: usize, stride: usize, compute: DType, vb: VarBuilder) -> Result<Block> {
        let cout = planes * depth.expansion();
        // (in, out, kernel, stride, padding) of each convolution.
        let shapes: Vec<(usize, usize, usize, usize, usize)> = match depth {
            Depth::D18 => vec![(cin, planes, 3, stride, 1), (planes, planes, 3, 1, 1)],
            Depth::D50 => vec![(cin, planes, 1, 1, 0), (planes, planes, 3, stride, 1), (planes, cout, 1, 1, 0)],
        };
        let mut convs = Vec::new();
        for (i, (a, b, k, s, p)) in shapes.into_iter().enumerate() {
            let conv = Conv::new(a, b, k, s, p, false, compute, vb.pp(format!("conv{}", i + 1)))?;
            convs.push((conv, Bn::new(b, vb.pp(format!("bn{}", i + 1)))?));
        }
        let downsample = if stride != 1 || cin != cout {
            let vb = vb.pp("downsample");
            Some((Conv::new(cin, cout, 1, stride, 0, false, compute, vb.pp("0"))?, Bn::new(cout, vb.pp("1"))?))
        } else {
            None
        };
        Ok(Block { convs, downsample })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (last, others) = self.convs.split_last().expect("a block has convolutions");
        let mut y = x.clone();
        for (conv, bn) in others {
            y = bn.forward_relu_t(&conv.forward(&y)?, train)?;
        }
        let z = last.0.forward(&y)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?,
            None => x.clone(),
        };
        // relu(bn(z) + shortcut): one op on a GPU in training.
        last.1.forward_add_relu_t(&z, &shortcut, train)
    }
}

pub struct ResNet {
    conv1: Conv,
    bn1: Bn,
    layers: Vec<Vec<Block>>,
    fc: Fc,
    /// The weights' format, which the pooled features are averaged in.
    master: DType,
}

impl ResNet {
    pub fn new(depth: Depth, in_channels: usize, classes: usize, compute: DType, vb: VarBuilder) -> Result<ResNet> {
        let conv1 = Conv::new(in_channels, 64, 7, 2, 3, false, compute, vb.pp("conv1"))?;
        let bn1 = Bn::new(64, vb.pp("bn1"))?;
        let mut cin = 64;
        let mut layers = Vec::new();
        for (j, (&n, planes)) in depth.blocks().iter().zip([64, 128, 256, 512]).enumerate() {
            let vb = vb.pp(format!("layer{}", j + 1));
            let mut blocks = Vec::new();
            for i in 0..n {
                let stride = if i == 0 && j > 0 { 2 } else { 1 };
                blocks.push(Block::new(depth, cin, planes, stride, compute, vb.pp(i.to_string()))?);
                cin = planes * depth.expansion();
            }
            layers.push(blocks);
        }
        let fc = Fc::new(depth.features(), classes, compute, vb.pp("fc"))?;
        Ok(ResNet { conv1, bn1, layers, fc, master: vb.dtype() })
    }

    /// The penultimate features `(b, 512 or 2048)`: the pooled output of the last stage, the
    /// input of the last linear layer.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.span(x, Stage::Input, Stage::Features, train)
    }

    /// The layers after stage `from` up to stage `to` (the stages of [`Arch::stages`] for a ResNet),
    /// applied to `x`, the output of `from`. The whole network is `span(x, Input, Logits)`.
    pub fn span(&self, x: &Tensor, from: Stage, to: Stage, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for &stage in super::stages_between(Arch::Resnet18, from, to)? {
            x = match stage {
                Stage::Stem => self.bn1.forward_conv_relu_pool_t(&self.conv1, &x, train, (3, 2, 1))?,
                Stage::Layer1 | Stage::Layer2 | Stage::Layer3 | Stage::Layer4 => {
                    let index = [Stage::Layer1, Stage::Layer2, Stage::Layer3, Stage::Layer4].iter().position(|s| *s == stage);
                    let mut x = x;
                    for block in &self.layers[index.expect("a layer stage")] {
                        x = block.forward_t(&x, train)?;
                    }
                    x
                }
                // Adaptive average pooling to 1x1 is the mean over the spatial positions.
                // The mean is taken in f32 under mixed precision.
                Stage::Features => super::layers::cast(&x, self.master)?.mean((2, 3))?,
                Stage::Logits => self.fc.forward(&x)?,
                other => unreachable!("stages_between gives a ResNet's stages only, not {other:?}"),
            };
        }
        Ok(x)
    }

    pub fn head(&self) -> &Fc {
        &self.fc
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.span(x, Stage::Input, Stage::Logits, train)
    }
}
