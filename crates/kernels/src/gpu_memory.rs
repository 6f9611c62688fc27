//! The GPU's memory pool keeps what a step frees for the next step (the CUDA build only).
//!
//! Why: cudarc allocates from the device's default stream-ordered memory pool
//! (`cuMemAllocAsync`), whose release threshold is 0: at every synchronisation (each step reads its
//! loss back) the pool hands its free memory back to the driver, and the next step asks for it
//! again. PyTorch's caching allocator keeps it. With the threshold at its maximum the pool keeps
//! freed blocks for reuse; the memory a run holds is then its peak, as PyTorch's reserved memory.

use candle_core::{Device, Result};
use cudarc::driver::sys;

/// Sets the release threshold of `device`'s default memory pool to its maximum (nothing on the
/// CPU).
pub fn keep_freed_memory(device: &Device) -> Result<()> {
    let Device::Cuda(device) = device else { return Ok(()) };
    let stream = device.cuda_stream();
    let context = stream.context();
    context.bind_to_thread().map_err(candle_core::Error::wrap)?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: `pool` is written by the driver for a device this process opened; the attribute's
    // value is a u64, as the driver's documentation of the release threshold says.
    #[allow(unsafe_code)]
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, context.cu_device()).result().map_err(candle_core::Error::wrap)?;
        sys::cuMemPoolSetAttribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, (&mut threshold as *mut u64).cast())
            .result()
            .map_err(candle_core::Error::wrap)?;
    }
    Ok(())
}
