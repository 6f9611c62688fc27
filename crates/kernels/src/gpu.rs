//! The GPU ops' entry points, in every build, so that callers need no `cfg` of their own: with
//! the `cuda` feature they are the ops of cudnn.rs, cudnn_bn.rs, cuda_bn.rs, cuda_relu.rs, cuda_pool.rs,
//! cuda_sgd.rs and gpu_memory.rs; without it no tensor can be on a GPU, so they are never reached ([`crate::gpu_applies`]
//! is false) and fail saying so if they are.

#[cfg(feature = "cuda")]
pub use crate::cuda_bn::batch_norm_eval;
#[cfg(feature = "cuda")]
pub use crate::cuda_pool::max_pool2d;
#[cfg(feature = "cuda")]
pub use crate::cuda_relu::relu;
#[cfg(feature = "cuda")]
pub use crate::cuda_sgd::sgd_step;
#[cfg(feature = "cuda")]
pub use crate::cudnn::conv2d;
#[cfg(feature = "cuda")]
pub use crate::cudnn_bn::{batch_norm_train, batch_norm_train_running};
#[cfg(feature = "cuda")]
pub use crate::gpu_memory::{configure_memory, pool_peaks};

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
