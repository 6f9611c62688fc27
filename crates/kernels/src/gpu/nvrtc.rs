//! This crate's own CUDA kernels (cuda_relu.cu, cuda_pool.cu, cuda_sgd.cu; the CUDA build only):
//! each source is compiled by NVRTC once per process, when first used. [`Module::run`] launches
//! the kernels that read contiguous inputs into a new buffer, in families of one kernel per data
//! format named `<kernel>_<suffix>` (SGD's in-place kernel launches itself).

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CudaStorage, DType, Layout, Result};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

/// A CUDA source and its PTX, compiled at the first launch.
pub(crate) struct Module {
    /// The module's name for candle's kernel cache, and for errors.
    pub name: &'static str,
    pub source: &'static str,
    pub ptx: OnceLock<std::result::Result<String, String>>,
}

/// The kernel-name suffix of each format a module supports.
pub(crate) struct Suffixes {
    pub f32: &'static str,
    pub bf16: &'static str,
    pub f16: &'static str,
}

impl Module {
    /// The module's PTX, compiled at the first call.
    pub(crate) fn ptx(&self) -> Result<&str> {
        self.ptx
            .get_or_init(|| {
                cudarc::nvrtc::compile_ptx(self.source).map(|p| p.to_src()).map_err(|e| format!("compiling {}: {e}", self.name))
            })
            .as_deref()
            .map_err(|e| candle_core::Error::Msg(e.clone()))
    }

    /// Runs `kernel` for the format of `inputs` (contiguous, all of one format) with arguments
    /// (inputs..., output, n, ints...), writing a new buffer of `n` values that the kernel must
    /// fill entirely; timed as `part` of `bench-step --profile` if given (the backward passes,
    /// which no layer times).
    pub(crate) fn run(
        &self,
        part: Option<&'static str>,
        kernel: &str,
        suffixes: &Suffixes,
        inputs: &[(&CudaStorage, &Layout)],
        n: usize,
        ints: &[i32],
    ) -> Result<CudaStorage> {
        let dtype = inputs[0].0.dtype();
        if let Some((other, _)) = inputs.iter().find(|(s, _)| s.dtype() != dtype) {
            candle_core::bail!("{kernel}: {dtype:?} and {:?} inputs", other.dtype());
        }
        let launch = || match dtype {
            DType::F32 => self.launch::<f32>(&format!("{kernel}_{}", suffixes.f32), inputs, n, ints),
            DType::BF16 => self.launch::<half::bf16>(&format!("{kernel}_{}", suffixes.bf16), inputs, n, ints),
            DType::F16 => self.launch::<half::f16>(&format!("{kernel}_{}", suffixes.f16), inputs, n, ints),
            other => candle_core::bail!("{kernel}: {other:?} is not supported (f32, bf16, f16)"),
        };
        match part {
            None => launch(),
            Some(part) => crate::profile::time_on_stream(part, &inputs[0].0.device().cuda_stream(), launch),
        }
    }

    fn launch<T: DeviceRepr + candle_core::cuda_backend::CudaDType>(
        &self,
        name: &str,
        inputs: &[(&CudaStorage, &Layout)],
        n: usize,
        ints: &[i32],
    ) -> Result<CudaStorage> {
        let device = inputs[0].0.device().clone();
        let views = inputs.iter().map(|(s, l)| super::cuda::view::<T>(s, l, name)).collect::<Result<Vec<_>>>()?;
        // The kernel writes each of the n values (the caller's contract).
        let mut out: CudaSlice<T> = super::cuda::uninit(&device, n)?;
        let func = device.get_or_load_custom_func(name, self.name, self.ptx()?)?;
        let n64 = n as u64;
        let mut builder = func.builder();
        for v in &views {
            builder.arg(v);
        }
        builder.arg(&mut out);
        builder.arg(&n64);
        for i in ints {
            builder.arg(i);
        }
        // SAFETY: arguments in the kernel's order and types (the .cu file's signature); the
        // kernels read within the views, whose sizes the ops' shapes fix, and write below n.
        #[allow(unsafe_code)]
        unsafe {
            builder.launch(LaunchConfig::for_num_elems(n.clamp(1, 1 << 20) as u32)).map_err(candle_core::Error::wrap)?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, device))
    }
}
