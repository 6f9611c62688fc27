//! What the GPU ops' host code shares, once: views of candle's CUDA storage as a layout sees it,
//! buffers that a kernel fills, NCHW shapes, and the CPU entry point's refusal. `op` names the
//! op in the error.

use candle_core::cuda_backend::CudaDType;
use candle_core::{CudaDevice, CudaStorage, Layout, Result};
use cudarc::driver::{CudaSlice, CudaView, DeviceRepr};

/// The span of a contiguous layout in its storage.
pub(crate) fn offsets(l: &Layout, op: &str) -> Result<(usize, usize)> {
    l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{op}: the inputs must be contiguous")))
}

/// A contiguous storage as its layout sees it.
pub(crate) fn view<'a, T: CudaDType + DeviceRepr>(s: &'a CudaStorage, l: &Layout, op: &str) -> Result<CudaView<'a, T>> {
    let (start, end) = offsets(l, op)?;
    Ok(s.as_cuda_slice::<T>()?.slice(start..end))
}

/// `n` values that the kernel launched next writes, every one (none is read before).
pub(crate) fn uninit<T: DeviceRepr>(device: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the callers' kernels (or cuDNN, with beta 0) write each of the n values before
    // anything reads them.
    #[allow(unsafe_code)]
    unsafe {
        device.alloc::<T>(n)
    }
}

/// The (n, c, h, w) of a 4-D shape.
pub(crate) fn nchw(d: &[usize], op: &str) -> Result<[usize; 4]> {
    match d {
        &[n, c, h, w] => Ok([n, c, h, w]),
        other => candle_core::bail!("{op}: (n, c, h, w) expected, got {other:?}"),
    }
}

/// A shape of up to 4 dimensions as 4, padded with ones at the end (cuDNN's descriptors take 4).
pub(crate) fn padded4(d: &[usize]) -> [usize; 4] {
    let mut out = [1; 4];
    for (o, &v) in out.iter_mut().zip(d) {
        *o = v;
    }
    out
}

/// The error of a GPU op's CPU entry point (candle's custom-op traits ask every op for one).
pub(crate) fn cuda_only<T>(op: &str) -> Result<T> {
    candle_core::bail!("{op} runs on CUDA tensors only")
}
