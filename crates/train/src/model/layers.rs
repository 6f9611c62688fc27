//! Conv, batch-norm and linear layers that compute in a chosen number format while their weights
//! stay f32 (mixed precision, as PyTorch's autocast): the cast of a weight is part of the graph,
//! so its gradient arrives in f32 on the variable the optimizer updates.

use candle_core::Var;
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

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
        oodlab_kernels::profile::time("forward: conv", x.device(), || self.forward_unprofiled(x))
    }

    fn forward_unprofiled(&self, x: &Tensor) -> Result<Tensor> {
        let (x, w) = (cast(x, self.compute)?, cast(&self.weight, self.compute)?);
        let (_, _, h, wd) = x.dims4()?;
        let k = w.dim(2)?;
        // candle 0.11's conv2d backward sizes the input gradient's width with the height's
        // remainder of the stride (backprop.rs, `out_padding`): where the two differ it fails with
        // a shape mismatch, so those convolutions are computed unfolded.
        let remainder = |size: usize| (size + 2 * self.padding - k) % self.stride;
        if oodlab_kernels::applies(&x) {
            return oodlab_kernels::conv2d(&x, &w, self.bias.as_ref(), self.stride, self.padding);
        }
        let y = if oodlab_kernels::gpu_applies(oodlab_kernels::GpuOp::Conv, &x) {
            oodlab_kernels::gpu::conv2d(&x, &w, self.stride, self.padding)?
        } else if remainder(h) != remainder(wd) {
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

/// Batch-norm with PyTorch's semantics (batch statistics in training, running statistics with
/// momentum 0.1 and the unbiased variance otherwise), computed in the weights' format (f32)
/// whatever the input's (its statistics need the range), the output cast back to the input's
/// format (on a GPU the ops take bf16/f16 data as it is and convert inside, or, with `bn16` and
/// `bn16k`, normalize it directly with f32 statistics); optionally followed by ReLU (in the same
/// op on the CPU and on a GPU), or by a ResNet block's residual addition and ReLU (in the same op
/// on a GPU). Parameter names as torchvision's.
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

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward(x, train, false, None)
    }

    /// `relu(bn(x))`.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward(x, train, true, None)
    }

    /// `max_pool(relu(bn(x)), k, stride, padding)`, one fused kernel on the CPU in training.
    pub fn forward_relu_pool_t(&self, x: &Tensor, train: bool, (k, stride, padding): (usize, usize, usize)) -> Result<Tensor> {
        if train && oodlab_kernels::applies(&cast(x, self.master)?) {
            return self.forward(x, train, true, Some((k, stride, padding)));
        }
        max_pool(&self.forward(x, train, true, None)?, k, stride, padding)
    }

    /// `max_pool(relu(bn(conv(x))), k, stride, padding)`; in training on the CPU in f32 one fused
    /// kernel, so that the convolution's output, the step's largest tensor, never becomes a
    /// tensor of the graph (crates/kernels/src/conv_bn.rs).
    pub fn forward_conv_relu_pool_t(&self, conv: &Conv, x: &Tensor, train: bool, pool: (usize, usize, usize)) -> Result<Tensor> {
        let fused = train
            && conv.compute == DType::F32
            && self.master == DType::F32
            && oodlab_kernels::applies(x)
            && oodlab_kernels::applies(&conv.weight);
        if !fused {
            return self.forward_relu_pool_t(&conv.forward(x)?, train, pool);
        }
        let fused = |x: &Tensor| {
            oodlab_kernels::conv_bn_train(
                x,
                &conv.weight,
                conv.bias.as_ref(),
                &self.weight,
                &self.bias,
                (conv.stride, conv.padding),
                BN_EPS,
                true,
                Some(pool),
            )
        };
        let out = oodlab_kernels::profile::time("forward: conv+batch-norm+ReLU+max-pool (fused)", x.device(), || fused(x))?;
        // Positions per channel of the convolution's output, which the statistics were over.
        let (n, _, h, w) = x.dims4()?;
        let k = conv.weight.dim(2)?;
        let side = |size: usize| (size + 2 * conv.padding - k) / conv.stride + 1;
        self.update_running(&out.mean, &out.var, (n * side(h) * side(w)) as f64)?;
        Ok(out.y)
    }

    /// PyTorch's running statistics: momentum 0.1, the variance unbiased over `count` values.
    fn update_running(&self, mean: &Tensor, var: &Tensor, count: f64) -> Result<()> {
        let (rm, rv) =
            oodlab_kernels::running_statistics(self.running_mean.as_tensor(), self.running_var.as_tensor(), mean, var, BN_MOMENTUM, count)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)
    }

    fn forward(&self, x: &Tensor, train: bool, relu: bool, pool: Option<(usize, usize, usize)>) -> Result<Tensor> {
        oodlab_kernels::profile::time("forward: batch-norm (+ReLU)", x.device(), || self.forward_unprofiled(x, train, relu, pool))
    }

    /// `relu(bn(x) + residual)`, a ResNet block's end; on a GPU one op (in training its sum is not
    /// kept for the backward pass, as PyTorch's in-place addition and ReLU keep none).
    pub fn forward_add_relu_t(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        let fused = if train { self.fuses_on_gpu(x) } else { self.evaluates_on_gpu(x) };
        if fused && residual.dtype() == x.dtype() {
            let after = oodlab_kernels::After::AddRelu(residual);
            return oodlab_kernels::profile::time("forward: batch-norm+add+ReLU (fused)", x.device(), || {
                if train {
                    self.train_on_gpu(x, after)
                } else {
                    self.eval_on_gpu(x, after)
                }
            });
        }
        relu(&(self.forward_t(x, train)? + residual)?)
    }

    /// Whether a GPU evaluates this layer over `x` with its one-kernel op (in `x`'s format, the
    /// arithmetic in f32 as the casts around candle's ops would do it).
    fn evaluates_on_gpu(&self, x: &Tensor) -> bool {
        self.master == DType::F32 && oodlab_kernels::gpu_applies(oodlab_kernels::GpuOp::BatchNormEval, x)
    }

    /// The scale and shift per channel that evaluation applies, from the running statistics:
    /// `weight / sqrt(running_var + eps)` and `bias - running_mean * scale`.
    fn eval_scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let scale = (&self.weight / (self.running_var.as_tensor() + BN_EPS)?.sqrt()?)?;
        let shift = (&self.bias - self.running_mean.as_tensor().mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// Evaluation on a GPU as one kernel: `x * scale + shift`, then `after`.
    fn eval_on_gpu(&self, x: &Tensor, after: oodlab_kernels::After) -> Result<Tensor> {
        let (scale, shift) = self.eval_scale_shift()?;
        oodlab_kernels::gpu::batch_norm_eval(x, &scale, &shift, after)
    }

    /// cuDNN's training batch-norm of `x`, then `after` in the same op; the batch's statistics go
    /// into the running ones by one kernel, rounded as update_running's ops round them.
    fn train_on_gpu(&self, x: &Tensor, after: oodlab_kernels::After) -> Result<Tensor> {
        let running =
            oodlab_kernels::RunningStats { mean: self.running_mean.as_tensor(), var: self.running_var.as_tensor(), momentum: BN_MOMENTUM };
        oodlab_kernels::gpu::batch_norm_train_running(x, &self.weight, &self.bias, BN_EPS, half(x), running, after)
    }

    /// Whether a GPU's training batch-norm takes `x` as it is, in f32, bf16 or f16 (half-precision
    /// data as [`half`] says), with f32 statistics, scale and shift: no casts around it, whose f32
    /// copies would be tensors the backward pass keeps.
    fn normalizes_on_gpu(&self, x: &Tensor) -> bool {
        self.master == DType::F32 && oodlab_kernels::gpu_applies(oodlab_kernels::GpuOp::BatchNorm, x)
    }

    /// Whether a GPU's training batch-norm of `x` and the ReLU after it run as one op.
    fn fuses_on_gpu(&self, x: &Tensor) -> bool {
        use oodlab_kernels::{gpu_applies, GpuOp};
        self.normalizes_on_gpu(x) && gpu_applies(GpuOp::Relu, x) && gpu_applies(GpuOp::Fuse, x)
    }

    fn forward_unprofiled(&self, x: &Tensor, train: bool, relu: bool, pool: Option<(usize, usize, usize)>) -> Result<Tensor> {
        if !train && pool.is_none() && self.evaluates_on_gpu(x) {
            return self.eval_on_gpu(x, if relu { oodlab_kernels::After::Relu } else { oodlab_kernels::After::Nothing });
        }
        let input = x.dtype();
        let on_gpu = train && self.normalizes_on_gpu(x);
        let x = if on_gpu { x.clone() } else { cast(x, self.master)? };
        let per_channel = |t: &Tensor| t.reshape((1, (), 1, 1));
        let y = if train {
            let (n, _, h, w) = x.dims4()?;
            let count = (n * h * w) as f64;
            if oodlab_kernels::applies(&x) {
                let out = oodlab_kernels::batch_norm_train(&x, &self.weight, &self.bias, BN_EPS, relu, pool)?;
                self.update_running(&out.mean, &out.var, count)?;
                out.y
            } else if on_gpu && relu && self.fuses_on_gpu(&x) {
                self.train_on_gpu(&x, oodlab_kernels::After::Relu)?
            } else if on_gpu {
                let y = self.train_on_gpu(&x, oodlab_kernels::After::Nothing)?;
                if relu {
                    relu_unprofiled(&y)?
                } else {
                    y
                }
            } else {
                let mean = x.mean_keepdim((0, 2, 3))?;
                let centred = x.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
                let y = centred.broadcast_div(&(&var + BN_EPS)?.sqrt()?)?;
                let y = y.broadcast_mul(&per_channel(&self.weight)?)?.broadcast_add(&per_channel(&self.bias)?)?;
                let y = if relu { y.relu()? } else { y };
                self.update_running(&mean.flatten_all()?.detach(), &var.flatten_all()?.detach(), count)?;
                y
            }
        } else {
            let (scale, shift) = self.eval_scale_shift()?;
            let y = x.broadcast_mul(&per_channel(&scale)?)?.broadcast_add(&per_channel(&shift)?)?;
            if relu {
                y.relu()?
            } else {
                y
            }
        };
        cast(&y, input)
    }
}

/// How the GPU's batch-norm treats bf16 or f16 data `x`: oodlab's kernels on the data itself with
/// `bn16k`, else cuDNN on the data itself with `bn16`, else cuDNN in f32 on a converted copy (the
/// arithmetic of casts around it).
fn half(x: &Tensor) -> oodlab_kernels::HalfData {
    use oodlab_kernels::{gpu_applies, GpuOp, HalfData};
    if gpu_applies(GpuOp::BatchNormHalfKernels, x) {
        HalfData::Kernels
    } else if gpu_applies(GpuOp::BatchNormHalf, x) {
        HalfData::Direct
    } else {
        HalfData::ViaF32
    }
}

/// ReLU: the CPU kernel, the GPU's with its one-kernel backward pass, or candle's.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    oodlab_kernels::profile::time("forward: relu", x.device(), || relu_unprofiled(x))
}

fn relu_unprofiled(x: &Tensor) -> Result<Tensor> {
    if oodlab_kernels::applies(x) {
        oodlab_kernels::relu(x)
    } else if oodlab_kernels::gpu_applies(oodlab_kernels::GpuOp::Relu, x) {
        oodlab_kernels::gpu::relu(x)
    } else {
        x.relu()
    }
}

/// Max-pooling over k x k windows: the CPU kernel where it applies, the GPU's (one kernel each
/// way), else [`max_pool_after_relu`]. Not candle's `max_pool2d`: its backward pass multiplies
/// each window's gradient by the fraction of the window that holds the maximum (1/4 for a 2x2
/// window with one maximum) where it should divide by the number of maxima (tested in
/// crates/kernels/tests).
pub fn max_pool(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    oodlab_kernels::profile::time("forward: max-pool", x.device(), || {
        if oodlab_kernels::applies(x) {
            oodlab_kernels::max_pool2d(x, k, stride, padding)
        } else if oodlab_kernels::gpu_applies(oodlab_kernels::GpuOp::Pool, x) {
            oodlab_kernels::gpu::max_pool2d(x, k, stride, padding)
        } else {
            max_pool_after_relu(x, k, stride, padding)
        }
    })
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

/// Max-pooling as the maximum of the k² strided views of the input, each a differentiable slice
/// (candle's own max-pool has no backward pass for overlapping windows, and a wrong one for the
/// others). Padding is with zeros, so with padding the input must be non-negative (it follows a
/// ReLU), where zeros give the same maxima as PyTorch's -inf padding.
///
/// Each window's gradient goes to its first maximum only, as PyTorch's: the output is the sum of
/// the views each times a constant mask that marks, per window, the first view equal to the
/// maximum. (Candle's `max` sends the gradient to every element equal to the maximum: in a flat
/// region, such as an image's background, a 2x2 window passed on four times the gradient, and
/// training went differently from PyTorch's; tests/cnn_kernels.rs and tests/resnet.rs.)
pub fn max_pool_after_relu(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let views = strided_views(x, k, stride, padding)?;
    let max = Tensor::stack(&views, 4)?.max(4)?.detach();
    // Where a window's maximum is 0, a padding zero must not win over the pixels (PyTorch pads
    // with -inf): each view's mask of real pixels, the same views of a padded plane of ones.
    let (_, _, h, w) = x.dims4()?;
    let real = match padding {
        0 => None,
        _ => Some(strided_views(&Tensor::ones((1, 1, h, w), x.dtype(), x.device())?, k, stride, padding)?),
    };
    // `taken` marks the windows whose maximum an earlier view already holds.
    let mut taken: Option<Tensor> = None;
    let mut y: Option<Tensor> = None;
    for (i, view) in views.iter().enumerate() {
        let hit = view.detach().eq(&max)?.to_dtype(view.dtype())?;
        let hit = match &real {
            Some(real) => hit.broadcast_mul(&real[i])?,
            None => hit,
        };
        let first = match &taken {
            Some(t) => (hit * t.affine(-1.0, 1.0)?)?,
            None => hit,
        };
        let term = (view * &first)?;
        taken = Some(match taken {
            Some(t) => (t + first)?,
            None => first,
        });
        y = Some(match y {
            Some(y) => (y + term)?,
            None => term,
        });
    }
    y.ok_or_else(|| candle_core::Error::Msg("max-pooling with an empty window".into()))
}

/// The k² views of `x` (n, c, h, w) zero-padded by `padding` that a k x k window with `stride`
/// sees at each of its offsets, each (n, c, ho, wo), offsets in row-major order.
fn strided_views(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Vec<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = ((h + 2 * padding - k) / stride + 1, (w + 2 * padding - k) / stride + 1);
    // Extra zeros at the bottom and right let every offset's slice span `stride * out` rows; the
    // rows they add are never selected.
    let x = x.pad_with_zeros(2, padding, padding + stride)?.pad_with_zeros(3, padding, padding + stride)?;
    let wx = x.dim(3)?;
    let mut views = Vec::with_capacity(k * k);
    for di in 0..k {
        // Rows di, di + stride, ...: take stride * ho rows, fold them as (ho, stride), keep the first.
        let rows = x.narrow(2, di, stride * ho)?.reshape((n, c, ho, stride, wx))?.narrow(3, 0, 1)?.squeeze(3)?;
        for dj in 0..k {
            views.push(rows.narrow(3, dj, stride * wo)?.reshape((n, c, ho, wo, stride))?.narrow(4, 0, 1)?.squeeze(4)?);
        }
    }
    Ok(views)
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
    // (n, c, k*k, ho, wo): rows ordered (channel, kernel row, kernel column) as the weight's.
    let cols = Tensor::stack(&strided_views(x, k, stride, padding)?, 2)?.reshape((n, c * k * k, ho * wo))?;
    let w = w.reshape((cout, c * k * k))?;
    w.broadcast_left(n)?.matmul(&cols)?.reshape((n, cout, ho, wo))
}
