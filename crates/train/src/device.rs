//! Where a worker trains: CUDA device 0 of the GPUs `CUDA_VISIBLE_DEVICES` shows it (the scheduler
//! confines each GPU slot to one device that way), or the CPU.

use candle_core::Device;

use crate::TrainError;

/// The device a run trains on and how the run's record names it.
pub struct Placement {
    pub device: Device,
    pub description: String,
}

/// Whether this build can train on NVIDIA GPUs (the `cuda` feature).
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// Picks the device for a worker that sees `visible` (`CUDA_VISIBLE_DEVICES`; `None` or empty:
/// no GPU). A GPU that cannot be opened is an error rather than a silent fall back to the CPU,
/// which would make a grid's timings and memory figures meaningless.
pub fn select(visible: Option<&str>) -> Result<Placement, TrainError> {
    let visible = visible.filter(|v| !v.trim().is_empty());
    match visible {
        Some(v) if CUDA_BUILD => {
            let device =
                Device::new_cuda(0).map_err(|e| TrainError::Setup(format!("cannot open CUDA device 0 (CUDA_VISIBLE_DEVICES={v}): {e}")))?;
            // Memory freed by a step stays in the device's pool for the next, and allocations
            // make no CUDA events (oodlab-kernels' gpu_memory.rs).
            oodlab_kernels::gpu::configure_memory(&device)
                .map_err(|e| TrainError::Setup(format!("cannot configure the GPU's memory pool: {e}")))?;
            Ok(Placement { description: format!("cuda:0 {}", gpu_name(&device).unwrap_or_default()).trim_end().to_string(), device })
        }
        Some(v) => Ok(Placement { device: Device::Cpu, description: format!("cpu (CUDA_VISIBLE_DEVICES={v}; built without CUDA)") }),
        None => Ok(Placement { device: Device::Cpu, description: "cpu".into() }),
    }
}

#[cfg(feature = "cuda")]
fn gpu_name(device: &Device) -> Option<String> {
    device.as_cuda_device().ok()?.cuda_stream().context().name().ok()
}

#[cfg(not(feature = "cuda"))]
fn gpu_name(_: &Device) -> Option<String> {
    None
}

/// Bytes in use on the run's GPU as the driver reports them (the whole device: runs packed on one
/// GPU see each other's memory); `None` on the CPU.
#[cfg(feature = "cuda")]
pub fn gpu_memory_used(device: &Device) -> Option<u64> {
    let (free, total) = device.as_cuda_device().ok()?.cuda_stream().context().mem_get_info().ok()?;
    Some((total - free) as u64)
}

#[cfg(not(feature = "cuda"))]
pub fn gpu_memory_used(_: &Device) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gpu_means_cpu() {
        assert!(select(None).unwrap().device.is_cpu());
        assert!(select(Some("")).unwrap().device.is_cpu());
        assert_eq!(select(None).unwrap().description, "cpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_build_given_a_gpu_says_so() {
        let p = select(Some("GPU-1234")).unwrap();
        assert!(p.device.is_cpu());
        assert_eq!(p.description, "cpu (CUDA_VISIBLE_DEVICES=GPU-1234; built without CUDA)");
    }
}
