//! ReLU on CUDA with a one-kernel backward pass (the CUDA build only, feature `cuda`): the
//! gradient passes where the output is positive. candle's ReLU backward is four kernels and three
//! fresh tensors (zeros, a comparison, a cast, a product), for each of a ResNet-18's 17 ReLUs.
//! f32 works on floats; bf16 and f16 on their bits, where "positive" is "sign bit clear and not
//! zero" and the gradient is copied or zeroed, so no arithmetic happens in the half type.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

const SOURCE: &str = include_str!("cuda_relu.cu");

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| cudarc::nvrtc::compile_ptx(SOURCE).map(|p| p.to_src()).map_err(|e| format!("compiling the ReLU kernels: {e}")))
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(e.clone()))
}

/// `max(x, 0)` for a CUDA tensor in f32, bf16 or f16, its backward pass one kernel.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

struct Relu;

struct ReluBackward;

fn range(l: &Layout) -> Result<(usize, usize)> {
    l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("cuda relu: contiguous tensors expected".into()))
}

/// Runs kernel `name` (of the f32 or 16-bit family, by `T`) over `inputs`, writing a new buffer
/// of the same length.
fn launch<T: DeviceRepr + candle_core::cuda_backend::CudaDType>(name: &str, inputs: &[(&CudaStorage, &Layout)]) -> Result<CudaStorage> {
    let device = inputs[0].0.device().clone();
    let (start, end) = range(inputs[0].1)?;
    let n = end - start;
    let views = inputs
        .iter()
        .map(|(s, l)| {
            let (a, b) = range(l)?;
            if b - a != n {
                candle_core::bail!("cuda relu: sizes differ");
            }
            Ok(s.as_cuda_slice::<T>()?.slice(a..b))
        })
        .collect::<Result<Vec<_>>>()?;
    // SAFETY: the kernel writes each of the n values.
    #[allow(unsafe_code)]
    let mut out: CudaSlice<T> = unsafe { device.alloc::<T>(n)? };
    let func = device.get_or_load_custom_func(name, "oodlab_relu", ptx()?)?;
    let n64 = n as u64;
    let mut builder = func.builder();
    for v in &views {
        builder.arg(v);
    }
    builder.arg(&mut out);
    builder.arg(&n64);
    // SAFETY: arguments in the kernel's order and types; indices below n, the views' length.
    #[allow(unsafe_code)]
    unsafe {
        builder.launch(LaunchConfig::for_num_elems(n.clamp(1, 1 << 20) as u32)).map_err(candle_core::Error::wrap)?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, device))
}

fn run(kernel: &str, inputs: &[(&CudaStorage, &Layout)]) -> Result<CudaStorage> {
    match inputs[0].0.dtype() {
        DType::F32 => launch::<f32>(&format!("{kernel}_f32"), inputs),
        DType::BF16 => launch::<half::bf16>(&format!("{kernel}_b16"), inputs),
        DType::F16 => launch::<half::f16>(&format!("{kernel}_b16"), inputs),
        other => candle_core::bail!("cuda relu: {other:?} is not supported (f32, bf16, f16)"),
    }
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "oodlab-cuda-relu"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        Ok((run("oodlab_relu", &[(s, l)])?, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&gy.contiguous()?, &ReluBackward)?))
    }
}

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "oodlab-cuda-relu-backward"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::cuda_only(self.name())
    }

    fn cuda_fwd(&self, ys: &CudaStorage, yl: &Layout, gs: &CudaStorage, gl: &Layout) -> Result<(CudaStorage, Shape)> {
        if ys.dtype() != gs.dtype() {
            candle_core::bail!("cuda relu backward: {:?} output, {:?} gradient", ys.dtype(), gs.dtype());
        }
        Ok((run("oodlab_relu_backward", &[(ys, yl), (gs, gl)])?, yl.shape().clone()))
    }
}
