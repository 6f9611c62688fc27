//! The GPU ops, in every build, so that callers need no `cfg` of their own. Each op is a module
//! of `gpu/`, listed here once: with the `cuda` feature its entry points are re-exported below;
//! without it no tensor can be on a GPU, so they are never reached ([`crate::gpu_applies`] is
//! false) and fail saying so if they are (the `absent` module: the same signatures). A model
//! does not call them: it asks [`crate::ops`], which picks the CPU kernel, the GPU's or candle's
//! op.
//!
//! `cuda` holds what the ops' host code shares (views of candle's storage, buffers, shapes),
//! `nvrtc` the compilation and launch of this crate's own kernels (the `.cu` files beside them).
//! [`GpuOp`] names each op for `OODLAB_GPU_KERNELS`, which turns them on and off one by one.

use candle_core::{DType, Tensor};

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "cuda")]
mod cuda_bn;
#[cfg(feature = "cuda")]
mod cuda_pool;
#[cfg(feature = "cuda")]
mod cuda_relu;
#[cfg(feature = "cuda")]
mod cuda_sgd;
#[cfg(feature = "cuda")]
mod cudnn;
#[cfg(feature = "cuda")]
mod cudnn_bn;
#[cfg(feature = "cuda")]
mod gpu_memory;
#[cfg(feature = "cuda")]
mod nvrtc;

#[cfg(feature = "cuda")]
pub use cuda_bn::batch_norm_eval;
#[cfg(feature = "cuda")]
pub use cuda_pool::max_pool2d;
#[cfg(feature = "cuda")]
pub use cuda_relu::relu;
#[cfg(feature = "cuda")]
pub use cuda_sgd::sgd_step;
#[cfg(feature = "cuda")]
pub use cudnn::conv2d;
#[cfg(feature = "cuda")]
pub use cudnn_bn::{batch_norm_train, batch_norm_train_running};
#[cfg(feature = "cuda")]
pub use gpu_memory::{configure_memory, pool_peaks};

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

    fn bit(self) -> u16 {
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

#[cfg(not(feature = "cuda"))]
pub use absent::*;

#[cfg(not(feature = "cuda"))]
mod absent {
    use candle_core::{Device, Result, Tensor};

    use crate::{After, BatchNormOutput, HalfData, RunningStats, SgdStep};

    fn absent<T>() -> Result<T> {
        candle_core::bail!("this oodlab was built without CUDA: no GPU kernels (scripts/build-cuda.sh builds them)")
    }

    pub fn conv2d(_: &Tensor, _: &Tensor, _: usize, _: usize) -> Result<Tensor> {
        absent()
    }

    pub fn batch_norm_train(_: &Tensor, _: &Tensor, _: &Tensor, _: f64, _: HalfData) -> Result<BatchNormOutput> {
        absent()
    }

    pub fn batch_norm_train_running(_: &Tensor, _: &Tensor, _: &Tensor, _: f64, _: HalfData, _: RunningStats, _: After) -> Result<Tensor> {
        absent()
    }

    pub fn batch_norm_eval(_: &Tensor, _: &Tensor, _: &Tensor, _: After) -> Result<Tensor> {
        absent()
    }

    pub fn relu(_: &Tensor) -> Result<Tensor> {
        absent()
    }

    pub fn max_pool2d(_: &Tensor, _: usize, _: usize, _: usize) -> Result<Tensor> {
        absent()
    }

    pub fn sgd_step(_: &Tensor, _: &Tensor, _: &Tensor, _: bool, _: SgdStep) -> Result<()> {
        absent()
    }

    /// Nothing to configure without a GPU.
    pub fn configure_memory(_: &Device) -> Result<()> {
        Ok(())
    }

    /// No GPU memory without a GPU.
    pub fn pool_peaks(_: &Device) -> Option<(u64, u64)> {
        None
    }
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
