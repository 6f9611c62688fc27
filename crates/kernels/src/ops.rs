//! The ops a model asks for — [`conv2d`], [`BatchNorm`]'s training and evaluation (with the ReLU,
//! max-pool, residual addition or convolution fused where a kernel can), [`relu`],
//! [`max_pool2d`] — and, for each, the choice of what computes it: this crate's CPU kernel where
//! [`crate::applies`], its GPU op where [`crate::gpu_applies`], else candle's own ops
//! ([`candle`]'s replacements where candle's are wrong or fail). The choice is made here only;
//! a model (crates/train/src/model) holds the parameters and calls these.

pub mod candle;

// The GPU ops (the `cuda` build only), each a file of gpu/ with its kernel's .cu beside it,
// declared here beside the branches that call them and the switch that names them ([`GpuOp`]):
// a new op is its two files and this one. What they share is crate::gpu's.
#[cfg(feature = "cuda")]
#[path = "gpu/cuda_bn.rs"]
pub(crate) mod cuda_bn;
#[cfg(feature = "cuda")]
#[path = "gpu/cuda_pool.rs"]
pub(crate) mod cuda_pool;
#[cfg(feature = "cuda")]
#[path = "gpu/cuda_relu.rs"]
pub(crate) mod cuda_relu;
#[cfg(feature = "cuda")]
#[path = "gpu/cuda_sgd.rs"]
pub(crate) mod cuda_sgd;
#[cfg(feature = "cuda")]
#[path = "gpu/cudnn.rs"]
pub(crate) mod cudnn;
#[cfg(feature = "cuda")]
#[path = "gpu/cudnn_bn.rs"]
pub(crate) mod cudnn_bn;

use candle_core::{DType, Result, Tensor, Var};

use crate::gpu::on_gpu;
use crate::{After, HalfData, RunningStats};

/// The GPU ops, each of which can be turned off alone (to find which one is wrong, or to time it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuOp {
    /// cuDNN's convolutions (forward and both gradients).
    Conv,
    /// cuDNN's training batch-norm.
    BatchNorm,
    /// SGD's update as one kernel per variable, in place.
    Sgd,
    /// ReLU with a one-kernel backward pass.
    Relu,
    /// Max-pooling as one kernel forward and one backward.
    Pool,
    /// cuDNN's training batch-norm on bf16 and f16 data directly, without casts to f32 and back
    /// around it (with [`GpuOp::BatchNorm`] on). Not in the default set until a GPU has checked it:
    /// `OODLAB_GPU_KERNELS=all` or a list naming `bn16` turns it on.
    BatchNormHalf,
    /// Batch-norm and the ReLU after it, and a ResNet block's last batch-norm, residual addition
    /// and ReLU, each as one op (with [`GpuOp::BatchNorm`] and [`GpuOp::Relu`] on): the
    /// intermediate tensors are not kept for the backward pass.
    Fuse,
    /// The training batch-norm of bf16 and f16 data in this crate's own kernels (cuda_bn.cu), on
    /// the data itself (with [`GpuOp::BatchNorm`] on; before `bn16` if both are on). Not in the
    /// default set until a GPU has checked it: `OODLAB_GPU_KERNELS=all` or a list naming `bn16k`.
    BatchNormHalfKernels,
    /// Batch-norm in evaluation (the running statistics), with the ReLU or a ResNet block's
    /// residual addition and ReLU after it, as one kernel (cuda_bn.cu) instead of three to seven
    /// of candle's passes; the same values.
    BatchNormEval,
}

impl GpuOp {
    pub const ALL: [GpuOp; 9] = [
        GpuOp::Conv,
        GpuOp::BatchNorm,
        GpuOp::Sgd,
        GpuOp::Relu,
        GpuOp::Pool,
        GpuOp::BatchNormHalf,
        GpuOp::Fuse,
        GpuOp::BatchNormHalfKernels,
        GpuOp::BatchNormEval,
    ];

    /// The ops in use when `OODLAB_GPU_KERNELS` is unset: all but `bn16` and `bn16k`, which only a
    /// GPU can check.
    pub const DEFAULT: [GpuOp; 7] =
        [GpuOp::Conv, GpuOp::BatchNorm, GpuOp::Sgd, GpuOp::Relu, GpuOp::Pool, GpuOp::Fuse, GpuOp::BatchNormEval];

    /// Its name in `OODLAB_GPU_KERNELS`.
    pub fn name(self) -> &'static str {
        match self {
            GpuOp::Conv => "conv",
            GpuOp::BatchNorm => "bn",
            GpuOp::Sgd => "sgd",
            GpuOp::Relu => "relu",
            GpuOp::Pool => "pool",
            GpuOp::BatchNormHalf => "bn16",
            GpuOp::Fuse => "fuse",
            GpuOp::BatchNormHalfKernels => "bn16k",
            GpuOp::BatchNormEval => "bneval",
        }
    }

    pub(crate) fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Whether GPU op `op` applies to `t`: a CUDA tensor in f32, bf16 or f16, in a build with the
/// `cuda` feature, unless `OODLAB_GPU_KERNELS` leaves the op out: `off` (or `0`, `false`) asks for
/// candle's own CUDA ops everywhere, a list such as `conv` for those ops only (to compare with
/// candle's, or to find a faulty one; scripts/gpu-check.sh), `all` for every op. Unset:
/// [`GpuOp::DEFAULT`].
pub fn gpu_applies(op: GpuOp, t: &Tensor) -> bool {
    cfg!(feature = "cuda")
        && t.device().is_cuda()
        && matches!(t.dtype(), DType::F32 | DType::BF16 | DType::F16)
        && gpu_ops() & op.bit() != 0
}

/// The GPU ops this process uses, as `OODLAB_GPU_KERNELS` names them (`off` for none; always
/// `off` in a build without the `cuda` feature).
pub fn gpu_ops_in_use() -> String {
    let on: Vec<&str> = GpuOp::ALL.iter().filter(|op| cfg!(feature = "cuda") && gpu_ops() & op.bit() != 0).map(|op| op.name()).collect();
    if on.is_empty() {
        "off".into()
    } else {
        on.join(",")
    }
}

/// The name of the environment variable that chooses the GPU ops.
pub const GPU_SWITCH: &str = "OODLAB_GPU_KERNELS";

/// The GPU ops' bits, read from `OODLAB_GPU_KERNELS` at the first use.
fn gpu_ops() -> u16 {
    static OPS: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *OPS.get_or_init(|| parse_gpu_ops(std::env::var(GPU_SWITCH).ok().as_deref()))
}

fn parse_gpu_ops(value: Option<&str>) -> u16 {
    let bits = |ops: &[GpuOp]| ops.iter().fold(0, |m, op| m | op.bit());
    match value.map(str::trim) {
        None | Some("" | "on" | "1" | "true") => bits(&GpuOp::DEFAULT),
        Some("all") => bits(&GpuOp::ALL),
        Some("off" | "0" | "false" | "none") => 0,
        Some(list) => {
            list.split(',').filter_map(|name| GpuOp::ALL.into_iter().find(|op| op.name() == name.trim())).fold(0, |m, op| m | op.bit())
        }
    }
}

/// One SGD update of `p` in place (its momentum buffer `buf`) by one kernel per variable; the
/// optimizer's entry point (crates/train/src/optim.rs), where [`gpu_applies`]`(GpuOp::Sgd, p)`.
pub fn sgd_step(p: &Tensor, grad: &Tensor, buf: &Tensor, first: bool, step: crate::SgdStep) -> Result<()> {
    on_gpu!(cuda_sgd::sgd_step(p, grad, buf, first, step))
}

/// Casts `t` to `dtype` unless it already is (the cast would be a copy).
pub fn cast(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t.clone())
    } else {
        t.to_dtype(dtype)
    }
}

/// A 2-D convolution's parameters: a square kernel `weight` (cout, cin, k, k) and `bias` in the
/// weights' format, computed in `compute` (mixed precision: the casts are part of the graph, so
/// the gradients arrive in the weights' format).
#[derive(Clone, Copy)]
pub struct Conv2d<'a> {
    pub weight: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub stride: usize,
    pub padding: usize,
    pub compute: DType,
}

impl Conv2d<'_> {
    /// The convolution of `x`: the CPU kernel (bias in the same pass), cuDNN's, the unfolded
    /// product where candle's backward pass fails, or candle's.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::profile::time("forward: conv", x.device(), || self.forward_unprofiled(x))
    }

    fn forward_unprofiled(&self, x: &Tensor) -> Result<Tensor> {
        let (x, w) = (cast(x, self.compute)?, cast(self.weight, self.compute)?);
        let (_, _, h, wd) = x.dims4()?;
        let k = w.dim(2)?;
        // candle 0.11's conv2d backward sizes the input gradient's width with the height's
        // remainder of the stride (backprop.rs, `out_padding`): where the two differ it fails with
        // a shape mismatch, so those convolutions are computed unfolded.
        let remainder = |size: usize| (size + 2 * self.padding - k) % self.stride;
        if crate::applies(&x) {
            return crate::conv2d(&x, &w, self.bias, self.stride, self.padding);
        }
        let y = if gpu_applies(GpuOp::Conv, &x) {
            on_gpu!(cudnn::conv2d(&x, &w, self.stride, self.padding))?
        } else if remainder(h) != remainder(wd) {
            candle::conv_unfold(&x, &w, self.stride, self.padding)?
        } else {
            x.conv2d(&w, self.padding, self.stride, 1, 1)?
        };
        match self.bias {
            Some(b) => y.broadcast_add(&cast(b, self.compute)?.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// [`Conv2d`] as a function.
pub fn conv2d(x: &Tensor, conv: Conv2d) -> Result<Tensor> {
    conv.forward(x)
}

/// Batch-norm's parameters and running statistics, with PyTorch's semantics (batch statistics in
/// training, running statistics with `momentum` and the unbiased variance otherwise), computed in
/// the weights' format `master` (f32) whatever the input's (its statistics need the range), the
/// output cast back to the input's format (on a GPU the ops take bf16/f16 data as it is and
/// convert inside, or, with `bn16` and `bn16k`, normalize it directly with f32 statistics).
/// Training updates the running statistics in place.
#[derive(Clone, Copy)]
pub struct BatchNorm<'a> {
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
    pub running_mean: &'a Var,
    pub running_var: &'a Var,
    pub master: DType,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm<'_> {
    /// `bn(x)`, or `relu(bn(x))` with `relu` (in the same op on the CPU and on a GPU).
    pub fn forward(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        self.forward_profiled(x, train, relu, None)
    }

    /// `max_pool(relu(bn(x)), k, stride, padding)`, one fused kernel on the CPU in training.
    pub fn relu_pool(&self, x: &Tensor, train: bool, (k, stride, padding): (usize, usize, usize)) -> Result<Tensor> {
        if train && crate::applies(&cast(x, self.master)?) {
            return self.forward_profiled(x, train, true, Some((k, stride, padding)));
        }
        max_pool2d(&self.forward_profiled(x, train, true, None)?, k, stride, padding)
    }

    /// `max_pool(relu(bn(conv(x))), k, stride, padding)`; in training on the CPU in f32 one fused
    /// kernel, so that the convolution's output, the step's largest tensor, never becomes a
    /// tensor of the graph (conv_bn.rs).
    pub fn conv_relu_pool(&self, conv: Conv2d, x: &Tensor, train: bool, pool: (usize, usize, usize)) -> Result<Tensor> {
        let fused = train && conv.compute == DType::F32 && self.master == DType::F32 && crate::applies(x) && crate::applies(conv.weight);
        if !fused {
            return self.relu_pool(&conv.forward(x)?, train, pool);
        }
        let fused = |x: &Tensor| {
            crate::conv_bn_train(x, conv.weight, conv.bias, self.weight, self.bias, (conv.stride, conv.padding), self.eps, true, Some(pool))
        };
        let out = crate::profile::time("forward: conv+batch-norm+ReLU+max-pool (fused)", x.device(), || fused(x))?;
        // Positions per channel of the convolution's output, which the statistics were over.
        let (n, _, h, w) = x.dims4()?;
        let k = conv.weight.dim(2)?;
        let side = |size: usize| (size + 2 * conv.padding - k) / conv.stride + 1;
        self.update_running(&out.mean, &out.var, (n * side(h) * side(w)) as f64)?;
        Ok(out.y)
    }

    /// `relu(bn(x) + residual)`, a ResNet block's end; on a GPU one op (in training its sum is not
    /// kept for the backward pass, as PyTorch's in-place addition and ReLU keep none).
    pub fn add_relu(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        let fused = if train { self.fuses_on_gpu(x) } else { self.evaluates_on_gpu(x) };
        if fused && residual.dtype() == x.dtype() {
            let after = After::AddRelu(residual);
            return crate::profile::time("forward: batch-norm+add+ReLU (fused)", x.device(), || {
                if train {
                    self.train_on_gpu(x, after)
                } else {
                    self.eval_on_gpu(x, after)
                }
            });
        }
        relu(&(self.forward(x, train, false)? + residual)?)
    }

    /// PyTorch's running statistics: the momentum, the variance unbiased over `count` values.
    fn update_running(&self, mean: &Tensor, var: &Tensor, count: f64) -> Result<()> {
        let (rm, rv) =
            crate::running_statistics(self.running_mean.as_tensor(), self.running_var.as_tensor(), mean, var, self.momentum, count)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)
    }

    fn forward_profiled(&self, x: &Tensor, train: bool, relu: bool, pool: Option<(usize, usize, usize)>) -> Result<Tensor> {
        crate::profile::time("forward: batch-norm (+ReLU)", x.device(), || self.forward_unprofiled(x, train, relu, pool))
    }

    /// Whether a GPU evaluates this layer over `x` with its one-kernel op (in `x`'s format, the
    /// arithmetic in f32 as the casts around candle's ops would do it).
    fn evaluates_on_gpu(&self, x: &Tensor) -> bool {
        self.master == DType::F32 && gpu_applies(GpuOp::BatchNormEval, x)
    }

    /// The scale and shift per channel that evaluation applies, from the running statistics:
    /// `weight / sqrt(running_var + eps)` and `bias - running_mean * scale`.
    fn eval_scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let scale = (self.weight / (self.running_var.as_tensor() + self.eps)?.sqrt()?)?;
        let shift = (self.bias - self.running_mean.as_tensor().mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// Evaluation on a GPU as one kernel: `x * scale + shift`, then `after`.
    fn eval_on_gpu(&self, x: &Tensor, after: After) -> Result<Tensor> {
        let (scale, shift) = self.eval_scale_shift()?;
        on_gpu!(cuda_bn::batch_norm_eval(x, &scale, &shift, after))
    }

    /// cuDNN's training batch-norm of `x`, then `after` in the same op; the batch's statistics go
    /// into the running ones by one kernel, rounded as update_running's ops round them.
    fn train_on_gpu(&self, x: &Tensor, after: After) -> Result<Tensor> {
        let running = RunningStats { mean: self.running_mean.as_tensor(), var: self.running_var.as_tensor(), momentum: self.momentum };
        on_gpu!(cudnn_bn::batch_norm_train_running(x, self.weight, self.bias, self.eps, half(x), running, after))
    }

    /// Whether a GPU's training batch-norm takes `x` as it is, in f32, bf16 or f16 (half-precision
    /// data as [`half`] says), with f32 statistics, scale and shift: no casts around it, whose f32
    /// copies would be tensors the backward pass keeps.
    fn normalizes_on_gpu(&self, x: &Tensor) -> bool {
        self.master == DType::F32 && gpu_applies(GpuOp::BatchNorm, x)
    }

    /// Whether a GPU's training batch-norm of `x` and the ReLU after it run as one op.
    fn fuses_on_gpu(&self, x: &Tensor) -> bool {
        self.normalizes_on_gpu(x) && gpu_applies(GpuOp::Relu, x) && gpu_applies(GpuOp::Fuse, x)
    }

    fn forward_unprofiled(&self, x: &Tensor, train: bool, relu: bool, pool: Option<(usize, usize, usize)>) -> Result<Tensor> {
        if !train && pool.is_none() && self.evaluates_on_gpu(x) {
            return self.eval_on_gpu(x, if relu { After::Relu } else { After::Nothing });
        }
        let input = x.dtype();
        let on_gpu = train && self.normalizes_on_gpu(x);
        let x = if on_gpu { x.clone() } else { cast(x, self.master)? };
        let per_channel = |t: &Tensor| t.reshape((1, (), 1, 1));
        let y = if train {
            let (n, _, h, w) = x.dims4()?;
            let count = (n * h * w) as f64;
            if crate::applies(&x) {
                let out = crate::batch_norm_train(&x, self.weight, self.bias, self.eps, relu, pool)?;
                self.update_running(&out.mean, &out.var, count)?;
                out.y
            } else if on_gpu && relu && self.fuses_on_gpu(&x) {
                self.train_on_gpu(&x, After::Relu)?
            } else if on_gpu {
                let y = self.train_on_gpu(&x, After::Nothing)?;
                if relu {
                    relu_unprofiled(&y)?
                } else {
                    y
                }
            } else {
                let mean = x.mean_keepdim((0, 2, 3))?;
                let centred = x.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
                let y = centred.broadcast_div(&(&var + self.eps)?.sqrt()?)?;
                let y = y.broadcast_mul(&per_channel(self.weight)?)?.broadcast_add(&per_channel(self.bias)?)?;
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
fn half(x: &Tensor) -> HalfData {
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
    crate::profile::time("forward: relu", x.device(), || relu_unprofiled(x))
}

fn relu_unprofiled(x: &Tensor) -> Result<Tensor> {
    if crate::applies(x) {
        crate::relu(x)
    } else if gpu_applies(GpuOp::Relu, x) {
        on_gpu!(cuda_relu::relu(x))
    } else {
        x.relu()
    }
}

/// Max-pooling over k x k windows: the CPU kernel where it applies, the GPU's (one kernel each
/// way), else [`candle::max_pool_after_relu`]. Not candle's `max_pool2d`: its backward pass
/// multiplies each window's gradient by the fraction of the window that holds the maximum (1/4
/// for a 2x2 window with one maximum) where it should divide by the number of maxima (tested in
/// crates/kernels/tests).
pub fn max_pool2d(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    crate::profile::time("forward: max-pool", x.device(), || {
        if crate::applies(x) {
            crate::max_pool2d(x, k, stride, padding)
        } else if gpu_applies(GpuOp::Pool, x) {
            on_gpu!(cuda_pool::max_pool2d(x, k, stride, padding))
        } else {
            candle::max_pool_after_relu(x, k, stride, padding)
        }
    })
}

#[cfg(test)]
mod gpu_switch_tests {
    use super::*;

    #[test]
    fn the_gpu_switch_names_ops() {
        let (conv, bn, sgd, relu, pool) =
            (GpuOp::Conv.bit(), GpuOp::BatchNorm.bit(), GpuOp::Sgd.bit(), GpuOp::Relu.bit(), GpuOp::Pool.bit());
        let (bn16, fuse, bn16k, bneval) =
            (GpuOp::BatchNormHalf.bit(), GpuOp::Fuse.bit(), GpuOp::BatchNormHalfKernels.bit(), GpuOp::BatchNormEval.bit());
        assert_eq!(parse_gpu_ops(None), conv | bn | sgd | relu | pool | fuse | bneval, "bf16 batch-norms wait for a GPU's check");
        assert_eq!(parse_gpu_ops(Some("all")), conv | bn | sgd | relu | pool | bn16 | fuse | bn16k | bneval);
        assert_eq!(parse_gpu_ops(Some("bn,bn16k")), bn | bn16k, "`bn16k` is not `bn16`");
        assert_eq!(parse_gpu_ops(Some("conv,bn,relu")), conv | bn | relu, "a list without `fuse` keeps the ops apart");
        assert_eq!(parse_gpu_ops(Some("bn,bn16")), bn | bn16);
        assert_eq!(parse_gpu_ops(Some("off")), 0);
        assert_eq!(parse_gpu_ops(Some("conv")), conv);
        assert_eq!(parse_gpu_ops(Some("bn, conv")), conv | bn);
        assert_eq!(parse_gpu_ops(Some("relu,sgd")), relu | sgd);
        assert_eq!(parse_gpu_ops(Some("pool")), pool);
        assert_eq!(parse_gpu_ops(Some("gelu")), 0, "an unknown name turns nothing on");
    }
}
