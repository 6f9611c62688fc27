//! Max-pooling on CUDA as one kernel forward and one backward (the CUDA build only, feature
//! `cuda`; the kernels are cuda_pool.cu). What it replaces on the GPU, `max_pool_after_relu` in
//! crates/train/src/model/layers.rs, builds each window's first maximum from the k² strided views
//! with candle's ops: two padded copies, a stack, and seven kernels per view forward, as many
//! backward — some 130 launches over the largest activation of a ResNet (its stem's 64 x 112 x
//! 112 per image). The op keeps no indices: the backward pass finds each window's maximum again
//! in the input, as the CPU kernel does (crates/kernels/src/pool.rs), so its output is one tensor.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

use crate::pool::Pool;

const SOURCE: &str = include_str!("cuda_pool.cu");

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| cudarc::nvrtc::compile_ptx(SOURCE).map(|p| p.to_src()).map_err(|e| format!("compiling the max-pool kernels: {e}")))
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(e.clone()))
}

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

fn range(l: &Layout) -> Result<(usize, usize)> {
    l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("cuda max-pool: contiguous tensors expected".into()))
}

/// Runs `kernel` (of the family for `T`) with `inputs` and the pooling's geometry, writing a new
/// buffer of `n` values, one per thread of the grid-stride loop.
fn launch<T: DeviceRepr + candle_core::cuda_backend::CudaDType>(
    kernel: &str,
    inputs: &[(&CudaStorage, &Layout)],
    n: usize,
    p: &Pool,
) -> Result<CudaStorage> {
    let device = inputs[0].0.device().clone();
    let views = inputs
        .iter()
        .map(|(s, l)| {
            let (a, b) = range(l)?;
            Ok(s.as_cuda_slice::<T>()?.slice(a..b))
        })
        .collect::<Result<Vec<_>>>()?;
    let (ho, wo) = p.out()?;
    let dims = [p.h, p.w, ho, wo, p.k, p.stride, p.padding]
        .map(|v| i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("cuda max-pool: size {v} beyond 32 bits"))));
    let dims = dims.into_iter().collect::<Result<Vec<i32>>>()?;
    // SAFETY: the kernel writes each of the n values.
    #[allow(unsafe_code)]
    let mut out: CudaSlice<T> = unsafe { device.alloc::<T>(n)? };
    let func = device.get_or_load_custom_func(kernel, "oodlab_max_pool", ptx()?)?;
    let n64 = n as u64;
    let mut builder = func.builder();
    for v in &views {
        builder.arg(v);
    }
    builder.arg(&mut out);
    builder.arg(&n64);
    for d in &dims {
        builder.arg(d);
    }
    // SAFETY: arguments in the kernel's order and types (cuda_pool.cu); the kernel reads planes
    // of h x w inputs and ho x wo gradients within the views, whose sizes the op's shapes fix.
    #[allow(unsafe_code)]
    unsafe {
        builder.launch(LaunchConfig::for_num_elems(n.clamp(1, 1 << 20) as u32)).map_err(candle_core::Error::wrap)?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, device))
}

fn run(kernel: &str, inputs: &[(&CudaStorage, &Layout)], n: usize, p: &Pool) -> Result<CudaStorage> {
    match inputs[0].0.dtype() {
        DType::F32 => launch::<f32>(&format!("{kernel}_f32"), inputs, n, p),
        DType::BF16 => launch::<half::bf16>(&format!("{kernel}_bf16"), inputs, n, p),
        DType::F16 => launch::<half::f16>(&format!("{kernel}_f16"), inputs, n, p),
        other => candle_core::bail!("cuda max-pool: {other:?} is not supported (f32, bf16, f16)"),
    }
}

impl CustomOp1 for CudaPool {
    fn name(&self) -> &'static str {
        "oodlab-cuda-max-pool2d"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, c, _, _) = l.shape().dims4()?;
        let (ho, wo) = self.0.out()?;
        Ok((run("oodlab_max_pool", &[(s, l)], n * c * ho * wo, &self.0)?, Shape::from((n, c, ho, wo))))
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
        crate::cuda_only(self.name())
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, gs: &CudaStorage, gl: &Layout) -> Result<(CudaStorage, Shape)> {
        if xs.dtype() != gs.dtype() {
            candle_core::bail!("cuda max-pool backward: {:?} input, {:?} gradient", xs.dtype(), gs.dtype());
        }
        let (n, c, h, w) = xl.shape().dims4()?;
        let (ho, wo) = self.0.out()?;
        if gl.shape().dims4()? != (n, c, ho, wo) {
            candle_core::bail!("cuda max-pool backward: gradient {:?} for output ({n}, {c}, {ho}, {wo})", gl.shape());
        }
        Ok((run("oodlab_max_pool_backward", &[(xs, xl), (gs, gl)], n * c * h * w, &self.0)?, xl.shape().clone()))
    }
}
