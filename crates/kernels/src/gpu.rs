//! What the GPU ops share, in every build, so that callers need no `cfg` of their own: the host
//! code (`cuda`: views of candle's storage, buffers, shapes; `nvrtc`: the compilation and launch
//! of this crate's own kernels, the `.cu` files of `gpu/`), the memory pool, and `on_gpu!`, the
//! call of an op that only the `cuda` build compiles. The ops themselves are files of `gpu/`
//! declared in `ops.rs`, beside their switch (`GpuOp`, `OODLAB_GPU_KERNELS`) and the choice
//! that calls them: a new op is its `.rs`, its `.cu` and `ops.rs` (docs/architecture.md,
//! "Extending oodlab"). Nothing here knows the ops. Without the `cuda` feature no tensor can be
//! on a GPU, so a GPU op is never reached (`gpu_applies` is false) and fails saying so if it is.

use candle_core::{Device, Result};

#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(feature = "cuda")]
mod gpu_memory;
#[cfg(feature = "cuda")]
pub(crate) mod nvrtc;

/// A GPU op's call `$call` in the `cuda` build; in the others, where the op's module does not
/// exist, an error saying the build has no GPU kernels (no tensor is on a GPU there, so a branch
/// that `gpu_applies` guards never gets here).
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
