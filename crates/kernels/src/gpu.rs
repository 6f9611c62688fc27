//! What the GPU ops share, in every build, so that callers need no `cfg` of their own: the
//! switch that turns them on and off one by one (`OODLAB_GPU_KERNELS`, [`gpu_applies`]), the
//! host code they share (`cuda`: views of candle's storage, buffers, shapes; `nvrtc`: the
//! compilation and launch of this crate's own kernels, the `.cu` files of `gpu/`), the memory
//! pool, and [`on_gpu!`], the call of an op that only the `cuda` build compiles. The ops
//! themselves are files of `gpu/` declared in [`crate::ops`], beside the choice that calls them:
//! a new op is its `.rs`, its `.cu` and `ops.rs` (docs/architecture.md, "Extending oodlab").
//! Without the `cuda` feature no tensor can be on a GPU, so a GPU op is never reached
//! ([`gpu_applies`] is false) and fails saying so if it is.

use candle_core::{DType, Device, Result, Tensor};

pub use crate::ops::GpuOp;

#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(feature = "cuda")]
mod gpu_memory;
#[cfg(feature = "cuda")]
pub(crate) mod nvrtc;

/// A GPU op's call `$call` in the `cuda` build; in the others, where the op's module does not
/// exist, an error saying the build has no GPU kernels (no tensor is on a GPU there, so a branch
/// that [`gpu_applies`] guards never gets here).
macro_rules! on_gpu {
    ($($op:ident)::+ ( $($arg:expr),* $(,)? )) => {{
        #[cfg(feature = "cuda")]
        let result = $($op)::+($($arg),*);
        // The arguments are borrowed so that a build without CUDA sees them used.
        #[cfg(not(feature = "cuda"))]
        let result = {
            $(let _ = &$arg;)*
            $crate::gpu::absent()
        };
        result
    }};
}
pub(crate) use on_gpu;

/// What a GPU op answers in a build without CUDA.
#[cfg(not(feature = "cuda"))]
pub(crate) fn absent<T>() -> Result<T> {
    candle_core::bail!("this oodlab was built without CUDA: no GPU kernels (scripts/build-cuda.sh builds them)")
}

/// One SGD update of `p` in place (its momentum buffer `buf`) by one kernel per variable; the
/// optimizer's entry point (crates/train/src/optim.rs), where [`gpu_applies`]`(GpuOp::Sgd, p)`.
pub fn sgd_step(p: &Tensor, grad: &Tensor, buf: &Tensor, first: bool, step: crate::SgdStep) -> Result<()> {
    on_gpu!(crate::ops::cuda_sgd::sgd_step(p, grad, buf, first, step))
}

/// Sets up `device`'s memory pool (nothing to do without a GPU).
pub fn configure_memory(device: &Device) -> Result<()> {
    #[cfg(feature = "cuda")]
    return gpu_memory::configure_memory(device);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        Ok(())
    }
}

/// The memory pool's peaks on `device`, reserved and in use, in bytes (none without a GPU).
pub fn pool_peaks(device: &Device) -> Option<(u64, u64)> {
    #[cfg(feature = "cuda")]
    return gpu_memory::pool_peaks(device);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        None
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
