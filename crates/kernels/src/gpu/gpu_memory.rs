//! How the GPU's memory is allocated (the CUDA build only): freed memory stays in the pool for the
//! next step, and allocations come without CUDA events; and how much of it this process held at
//! most.
//!
//! The pool: cudarc allocates from the device's default stream-ordered memory pool
//! (`cuMemAllocAsync`), whose release threshold is 0: at every synchronisation (each step reads its
//! loss back) the pool hands its free memory back to the driver, and the next step asks for it
//! again. PyTorch's caching allocator keeps it. With the threshold at its maximum the pool keeps
//! freed blocks for reuse; the memory a run holds is then its peak, as PyTorch's reserved memory.
//!
//! The events: with event tracking on (cudarc's default) every allocation creates two CUDA events
//! and its free destroys them, four driver calls for each tensor a step makes. cudarc records and
//! waits on those events only while a context has streams of its own
//! (`CudaContext::is_managing_stream_synchronization`); candle queues all its work on CUDA's
//! per-thread default stream, which cudarc does not count, so the events are made and never used.
//! Turning tracking off changes no ordering: it removes the calls from the thread that feeds the
//! GPU. Work that crosses threads must then order itself, as it had to already: the one place, the
//! loader's copy of a batch on its own thread, waits for that copy before handing the batch over
//! (oodlab-train's loader.rs).

use candle_core::{CudaDevice, Device, Result};
use cudarc::driver::sys;

/// The most memory this process's allocations held in `device`'s default pool since it was opened,
/// in bytes: (reserved from the driver, in use by tensors), as PyTorch's
/// `torch.cuda.max_memory_reserved()` and `max_memory_allocated()` count theirs. Per process, so
/// runs packed on one GPU each see their own (the driver's figure for the device counts them all,
/// and the CUDA context besides). `None` on the CPU.
pub fn pool_peaks(device: &Device) -> Option<(u64, u64)> {
    let Device::Cuda(device) = device else { return None };
    let pool = default_pool(device).ok()?;
    let (mut reserved, mut used) = (0u64, 0u64);
    // SAFETY: a pool of a device this process opened; both attributes are u64 values.
    #[allow(unsafe_code)]
    unsafe {
        sys::cuMemPoolGetAttribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, (&mut reserved as *mut u64).cast())
            .result()
            .ok()?;
        sys::cuMemPoolGetAttribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, (&mut used as *mut u64).cast())
            .result()
            .ok()?;
    }
    Some((reserved, used))
}

/// The default stream-ordered memory pool of `device`, which cudarc allocates from.
fn default_pool(device: &CudaDevice) -> Result<sys::CUmemoryPool> {
    let stream = device.cuda_stream();
    let context = stream.context();
    context.bind_to_thread().map_err(candle_core::Error::wrap)?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: `pool` is written by the driver for a device this process opened.
    #[allow(unsafe_code)]
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, context.cu_device()).result().map_err(candle_core::Error::wrap)?;
    }
    Ok(pool)
}

/// Sets the release threshold of `device`'s default memory pool to its maximum and turns cudarc's
/// per-allocation events off, before the device's first tensor (nothing on the CPU).
pub fn configure_memory(device: &Device) -> Result<()> {
    let Device::Cuda(device) = device else { return Ok(()) };
    // SAFETY: only tensors made from now on go without events, and no stream of this process
    // relies on them (see the module's documentation): candle's device and every op here queue on
    // the per-thread default stream, and the loader synchronises its own.
    #[allow(unsafe_code)]
    unsafe {
        device.disable_event_tracking();
    }
    let pool = default_pool(device)?;
    let mut threshold = u64::MAX;
    // SAFETY: a pool of a device this process opened; the attribute's value is a u64, as the
    // driver's documentation of the release threshold says.
    #[allow(unsafe_code)]
    unsafe {
        sys::cuMemPoolSetAttribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, (&mut threshold as *mut u64).cast())
            .result()
            .map_err(candle_core::Error::wrap)?;
    }
    Ok(())
}
