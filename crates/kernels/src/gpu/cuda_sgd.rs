//! SGD's update as one CUDA kernel per variable, in place (the CUDA build only, feature `cuda`):
//! `g = grad + wd p; buf = m buf + g` (or `buf = g` at the first step); `g = nesterov ? g + m buf
//! : buf; p -= lr g`, PyTorch's `torch.optim.SGD`. With candle's ops the same update is about nine
//! kernels and seven fresh tensors per variable, a few hundred launches per ResNet step (#17).
//! Each multiplication and addition is rounded on its own (`__fmul_rn`, `__fadd_rn`), as the
//! separate ops round them: no fused multiply-add changes the result.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, DType, InplaceOp3, Layout, Result, Tensor};
use cudarc::driver::{LaunchConfig, PushKernelArg};

use crate::gpu::nvrtc::Module;
use crate::SgdStep;

static KERNEL: Module = Module { name: "oodlab_sgd", source: include_str!("cuda_sgd.cu"), ptx: OnceLock::new() };

/// Updates `p` (a variable's f32 CUDA tensor) and its momentum buffer `buf` in place from `grad`;
/// `first` when `buf` holds nothing yet (it is then set to the gradient). All three contiguous
/// and of one shape.
pub fn sgd_step(p: &Tensor, grad: &Tensor, buf: &Tensor, first: bool, step: SgdStep) -> Result<()> {
    if p.dtype() != DType::F32 || grad.dtype() != DType::F32 || buf.dtype() != DType::F32 {
        candle_core::bail!("cuda sgd: f32 expected");
    }
    if p.shape() != grad.shape() || p.shape() != buf.shape() {
        candle_core::bail!("cuda sgd: shapes {:?}, {:?}, {:?} differ", p.dims(), grad.dims(), buf.dims());
    }
    p.inplace_op3(grad, buf, &Sgd { step, first })
}

struct Sgd {
    step: SgdStep,
    first: bool,
}

impl InplaceOp3 for Sgd {
    fn name(&self) -> &'static str {
        "oodlab-cuda-sgd"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, dst: &mut CudaStorage, dst_l: &Layout, gs: &CudaStorage, gl: &Layout, bs: &CudaStorage, bl: &Layout) -> Result<()> {
        let range = |l: &Layout| crate::gpu::cuda::offsets(l, "cuda sgd");
        let ((ps, pe), (g0, g1), (b0, b1)) = (range(dst_l)?, range(gl)?, range(bl)?);
        let n = pe - ps;
        if g1 - g0 != n || b1 - b0 != n || dst.dtype() != DType::F32 {
            candle_core::bail!("cuda sgd: sizes differ");
        }
        let device = dst.device().clone();
        let func = device.get_or_load_custom_func("oodlab_sgd", KERNEL.name, KERNEL.ptx()?)?;
        let grad = gs.as_cuda_slice::<f32>()?.slice(g0..g1);
        // The buffer is written through its device pointer: it is this update's alone (the
        // optimizer owns it), read and written by the one kernel, element by element.
        let buf = bs.as_cuda_slice::<f32>()?.slice(b0..b1);
        let p = dst.as_cuda_slice_mut::<f32>()?;
        let mut p = p.slice_mut(ps..pe);
        let (n64, nesterov, first) = (n as u64, i32::from(self.step.nesterov), i32::from(self.first));
        let mut builder = func.builder();
        builder.arg(&mut p);
        builder.arg(&grad);
        builder.arg(&buf);
        builder.arg(&n64);
        builder.arg(&self.step.lr);
        builder.arg(&self.step.momentum);
        builder.arg(&self.step.weight_decay);
        builder.arg(&nesterov);
        builder.arg(&first);
        let cfg = LaunchConfig::for_num_elems(n.min(1 << 20) as u32);
        // SAFETY: the arguments match the kernel's parameters in order and type; every index the
        // kernel touches is below `n`, the length of the three views.
        #[allow(unsafe_code)]
        unsafe {
            builder.launch(cfg).map_err(candle_core::Error::wrap)?;
        }
        Ok(())
    }
}
