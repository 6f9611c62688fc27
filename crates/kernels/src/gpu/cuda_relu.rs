//! ReLU on CUDA with a one-kernel backward pass (the CUDA build only, feature `cuda`): the
//! gradient passes where the output is positive. candle's ReLU backward is four kernels and three
//! fresh tensors (zeros, a comparison, a cast, a product), for each of a ResNet-18's 17 ReLUs.
//! f32 works on floats; bf16 and f16 on their bits, where "positive" is "sign bit clear and not
//! zero" and the gradient is copied or zeroed, so no arithmetic happens in the half type.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CudaStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::gpu::nvrtc::{Module, Suffixes};

static KERNELS: Module = Module { name: "oodlab_relu", source: include_str!("cuda_relu.cu"), ptx: OnceLock::new() };

/// bf16 and f16 share the kernels on 16-bit patterns.
const SUFFIXES: Suffixes = Suffixes { f32: "f32", bf16: "b16", f16: "b16" };

/// `max(x, 0)` for a CUDA tensor in f32, bf16 or f16, its backward pass one kernel.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

/// The ReLU kernel on a contiguous CUDA storage, into a new one (for the fused ops of cudnn_bn.rs).
pub(crate) fn relu_storage(s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
    KERNELS.run(None, "oodlab_relu", &SUFFIXES, &[(s, l)], l.shape().elem_count(), &[])
}

/// The gradient through a ReLU whose output is `y`: `gy` where `y > 0`, else 0 (one kernel).
pub(crate) fn relu_backward(y: &Tensor, gy: &Tensor) -> Result<Tensor> {
    y.apply_op2_no_bwd(&gy.contiguous()?, &ReluBackward)
}

struct Relu;

struct ReluBackward;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "oodlab-cuda-relu"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        Ok((relu_storage(s, l)?, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(relu_backward(y, gy)?))
    }
}

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "oodlab-cuda-relu-backward"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, ys: &CudaStorage, yl: &Layout, gs: &CudaStorage, gl: &Layout) -> Result<(CudaStorage, Shape)> {
        if yl.shape() != gl.shape() {
            candle_core::bail!("cuda relu backward: output {:?}, gradient {:?}", yl.shape(), gl.shape());
        }
        let gx =
            KERNELS.run(Some("backward: relu"), "oodlab_relu_backward", &SUFFIXES, &[(ys, yl), (gs, gl)], yl.shape().elem_count(), &[])?;
        Ok((gx, yl.shape().clone()))
    }
}
