//! Conv, batch-norm and linear layers: their parameters (torchvision's names) and their
//! construction from a variable map. What computes each (this project's CPU kernels, the GPU's,
//! candle's ops) is chosen by the kernels crate (`oodlab_kernels::ops`); the layers compute in a
//! chosen number format while their weights stay f32 (mixed precision, as PyTorch's autocast).

use candle_core::Var;
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use oodlab_kernels::ops::{BatchNorm, Conv2d};

pub use oodlab_kernels::ops::{cast, relu};

/// A 2-D convolution with square kernels, torchvision's parameter names (`weight`, `bias`).
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    compute: DType,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        compute: DType,
        vb: VarBuilder,
    ) -> Result<Conv> {
        // The values are set by the model's seeded initialisation; the hint only fills the shape.
        let weight = vb.get_with_hints((cout, cin, k, k), "weight", Init::Const(0.0))?;
        let bias = if bias { Some(vb.get_with_hints(cout, "bias", Init::Const(0.0))?) } else { None };
        Ok(Conv { weight, bias, stride, padding, compute })
    }

    fn op(&self) -> Conv2d<'_> {
        Conv2d { weight: &self.weight, bias: self.bias.as_ref(), stride: self.stride, padding: self.padding, compute: self.compute }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.op().forward(x)
    }
}

/// Batch-norm with PyTorch's semantics (`oodlab_kernels::ops::BatchNorm`: batch statistics in
/// training, running statistics with momentum 0.1 and the unbiased variance otherwise),
/// optionally followed by ReLU, max-pooling or a ResNet block's residual addition and ReLU, fused
/// where a kernel can. Parameter names as torchvision's.
pub struct Bn {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    master: DType,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

impl Bn {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Bn> {
        let master = vb.dtype();
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        // The running statistics are variables of the map (saved, loaded) but not trained:
        // they get no gradient, so the optimizer leaves them alone.
        let running_mean = Var::from_tensor(&vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?)?;
        let running_var = Var::from_tensor(&vb.get_with_hints(channels, "running_var", Init::Const(1.0))?)?;
        Ok(Bn { weight, bias, running_mean, running_var, master })
    }

    fn op(&self) -> BatchNorm<'_> {
        BatchNorm {
            weight: &self.weight,
            bias: &self.bias,
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            master: self.master,
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.op().forward(x, train, false)
    }

    /// `relu(bn(x))`.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.op().forward(x, train, true)
    }

    /// `max_pool(relu(bn(x)), k, stride, padding)`.
    pub fn forward_relu_pool_t(&self, x: &Tensor, train: bool, pool: (usize, usize, usize)) -> Result<Tensor> {
        self.op().relu_pool(x, train, pool)
    }

    /// `max_pool(relu(bn(conv(x))), k, stride, padding)`.
    pub fn forward_conv_relu_pool_t(&self, conv: &Conv, x: &Tensor, train: bool, pool: (usize, usize, usize)) -> Result<Tensor> {
        self.op().conv_relu_pool(conv.op(), x, train, pool)
    }

    /// `relu(bn(x) + residual)`, a ResNet block's end.
    pub fn forward_add_relu_t(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        self.op().add_relu(x, residual, train)
    }
}

/// A fully connected layer whose output is in the weights' format (f32): the logits feed the loss
/// and the scores.
pub struct Fc {
    weight: Tensor,
    bias: Tensor,
    compute: DType,
}

impl Fc {
    pub fn new(cin: usize, cout: usize, compute: DType, vb: VarBuilder) -> Result<Fc> {
        let weight = vb.get_with_hints((cout, cin), "weight", Init::Const(0.0))?;
        let bias = vb.get_with_hints(cout, "bias", Init::Const(0.0))?;
        Ok(Fc { weight, bias, compute })
    }

    /// The weight `(classes, features)` and bias `(classes,)`, in the weights' format.
    pub fn parameters(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        oodlab_kernels::profile::time("forward: linear", x.device(), || {
            let y = cast(x, self.compute)?.matmul(&cast(&self.weight, self.compute)?.t()?)?;
            cast(&y, self.bias.dtype())?.broadcast_add(&self.bias)
        })
    }
}
