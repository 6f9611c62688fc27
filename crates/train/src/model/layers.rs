//! Conv, batch-norm and linear layers that compute in a chosen number format while their weights
//! stay f32 (mixed precision, as PyTorch's autocast): the cast of a weight is part of the graph,
//! so its gradient arrives in f32 on the variable the optimizer updates.

use candle_core::{DType, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Init, ModuleT, VarBuilder};

/// Casts `t` to `dtype` unless it already is (the cast would be a copy).
pub fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t.clone())
    } else {
        t.to_dtype(dtype)
    }
}

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

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (x, w) = (cast(x, self.compute)?, cast(&self.weight, self.compute)?);
        let (_, _, h, wd) = x.dims4()?;
        let k = w.dim(2)?;
        // candle 0.11's conv2d backward sizes the input gradient's width with the height's
        // remainder of the stride (backprop.rs, `out_padding`): where the two differ it fails with
        // a shape mismatch, so those convolutions are computed unfolded.
        let remainder = |size: usize| (size + 2 * self.padding - k) % self.stride;
        let y = if remainder(h) != remainder(wd) {
            conv_unfold(&x, &w, self.stride, self.padding)?
        } else {
            x.conv2d(&w, self.padding, self.stride, 1, 1)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&cast(b, self.compute)?.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Batch-norm computed in the weights' format (f32) whatever the input's (its statistics need the
/// range), the output cast back to the input's format.
pub struct Bn {
    bn: BatchNorm,
    master: DType,
}

impl Bn {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Bn> {
        let config = BatchNormConfig { eps: 1e-5, momentum: 0.1, ..Default::default() };
        let master = vb.dtype();
        Ok(Bn { bn: candle_nn::batch_norm(channels, config, vb)?, master })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        cast(&self.bn.forward_t(&cast(x, self.master)?, train)?, x.dtype())
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

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = cast(x, self.compute)?.matmul(&cast(&self.weight, self.compute)?.t()?)?;
        cast(&y, self.bias.dtype())?.broadcast_add(&self.bias)
    }
}

/// Max-pooling with overlapping windows (`k` > `stride`, as ResNet's 3x3 stride-2 stem), whose
/// backward candle's own max-pool lacks: the maximum of the k² strided views of the input, each a
/// differentiable slice. Padding is with zeros, so the input must be non-negative (it follows a
/// ReLU), where zeros give the same maxima as PyTorch's -inf padding.
pub fn max_pool_after_relu(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (hp, wp) = (h + 2 * padding, w + 2 * padding);
    let (ho, wo) = ((hp - k) / stride + 1, (wp - k) / stride + 1);
    // Extra zeros at the bottom and right let every offset's slice span `stride * out` rows; the
    // rows they add are never selected.
    let x = x.pad_with_zeros(2, padding, padding + stride)?.pad_with_zeros(3, padding, padding + stride)?;
    let wx = x.dim(3)?;
    let mut views = Vec::with_capacity(k * k);
    for di in 0..k {
        // Rows di, di + stride, ...: take stride * ho rows, fold them as (ho, stride), keep the first.
        let rows = x.narrow(2, di, stride * ho)?.reshape((n, c, ho, stride, wx))?.narrow(3, 0, 1)?.squeeze(3)?;
        for dj in 0..k {
            let cols = rows.narrow(3, dj, stride * wo)?.reshape((n, c, ho, wo, stride))?.narrow(4, 0, 1)?.squeeze(4)?;
            views.push(cols);
        }
    }
    Tensor::stack(&views, 4)?.max(4)
}

/// A convolution as a matrix product over unfolded patches (im2col written with tensor slices), so
/// that its backward pass is matrix products and slice gradients. It is not faster than candle's
/// conv2d, on the CPU or on a GPU, and takes more memory (docs/performance.md); it is used where
/// candle's backward pass fails.
pub fn conv_unfold(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (cout, cin, k, _) = w.dims4()?;
    debug_assert_eq!(c, cin);
    let (ho, wo) = ((h + 2 * padding - k) / stride + 1, (wd + 2 * padding - k) / stride + 1);
    let cols = if k == 1 && padding == 0 && stride == 1 {
        x.reshape((n, c, h * wd))?
    } else {
        let x = x.pad_with_zeros(2, padding, padding + stride)?.pad_with_zeros(3, padding, padding + stride)?;
        let wx = x.dim(3)?;
        let mut views = Vec::with_capacity(k * k);
        for di in 0..k {
            let rows = x.narrow(2, di, stride * ho)?.reshape((n, c, ho, stride, wx))?.narrow(3, 0, 1)?.squeeze(3)?;
            for dj in 0..k {
                views.push(rows.narrow(3, dj, stride * wo)?.reshape((n, c, ho, wo, stride))?.narrow(4, 0, 1)?.squeeze(4)?);
            }
        }
        // (n, c, k*k, ho, wo): rows ordered (channel, kernel row, kernel column) as the weight's.
        Tensor::stack(&views, 2)?.reshape((n, c * k * k, ho * wo))?
    };
    let w = w.reshape((cout, c * k * k))?;
    w.broadcast_left(n)?.matmul(&cols)?.reshape((n, cout, ho, wo))
}
