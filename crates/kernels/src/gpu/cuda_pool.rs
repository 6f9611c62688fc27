//! Max-pooling on CUDA as one kernel forward and one backward (the CUDA build only, feature
//! `cuda`; the kernels are cuda_pool.cu). What it replaces on the GPU, `max_pool_after_relu` in
//! crates/kernels/src/ops/candle.rs, builds each window's first maximum from the k² strided views
//! with candle's ops: two padded copies, a stack, and seven kernels per view forward, as many
//! backward — some 130 launches over the largest activation of a ResNet (its stem's 64 x 112 x
//! 112 per image). The op keeps no indices: the backward pass finds each window's maximum again
//! in the input, as the CPU kernel does (crates/kernels/src/pool.rs), so its output is one tensor.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CudaStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::gpu::nvrtc::{Module, Suffixes};
use crate::pool::Pool;

static KERNELS: Module =
    Module { name: "oodlab_max_pool", source: concat!(include_str!("cuda_half.cuh"), include_str!("cuda_pool.cu")), ptx: OnceLock::new() };

const SUFFIXES: Suffixes = Suffixes { f32: "f32", bf16: "bf16", f16: "f16" };

/// PyTorch's `max_pool2d(x, k, stride, padding)` of an (n, c, h, w) CUDA tensor in f32, bf16 or
/// f16; the gradient goes to each window's first maximum.
pub fn max_pool2d(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let pool = Pool { k, stride, padding, h, w };
    pool.out()?;
    x.contiguous()?.apply_op1(CudaPool(pool))
}

struct CudaPool(Pool);

struct CudaPoolBackward(Pool);

/// The geometry arguments of the kernels: h, w, ho, wo, k, stride, padding.
fn geometry(p: &Pool) -> Result<Vec<i32>> {
    let (ho, wo) = p.out()?;
    [p.h, p.w, ho, wo, p.k, p.stride, p.padding]
        .into_iter()
        .map(|v| i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("cuda max-pool: size {v} beyond 32 bits"))))
        .collect()
}

impl CustomOp1 for CudaPool {
    fn name(&self) -> &'static str {
        "oodlab-cuda-max-pool2d"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, c, _, _) = l.shape().dims4()?;
        let (ho, wo) = self.0.out()?;
        Ok((KERNELS.run(None, "oodlab_max_pool", &SUFFIXES, &[(s, l)], n * c * ho * wo, &geometry(&self.0)?)?, Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&gy.contiguous()?, &CudaPoolBackward(self.0))?))
    }
}

impl CustomOp2 for CudaPoolBackward {
    fn name(&self) -> &'static str {
        "oodlab-cuda-max-pool2d-backward"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, gs: &CudaStorage, gl: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, c, h, w) = xl.shape().dims4()?;
        let (ho, wo) = self.0.out()?;
        if gl.shape().dims4()? != (n, c, ho, wo) {
            candle_core::bail!("cuda max-pool backward: gradient {:?} for output ({n}, {c}, {ho}, {wo})", gl.shape());
        }
        let inputs = [(xs, xl), (gs, gl)];
        let gx =
            KERNELS.run(Some("backward: max-pool"), "oodlab_max_pool_backward", &SUFFIXES, &inputs, n * c * h * w, &geometry(&self.0)?)?;
        Ok((gx, xl.shape().clone()))
    }
}
