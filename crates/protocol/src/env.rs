//! Environment variables the scheduler sets for a worker.

/// Number of CPU threads the worker may use (its slot's thread budget).
pub const THREADS: &str = "OODLAB_THREADS";
/// Read by candle's CPU kernels (through rayon and gemm) to size their thread pools.
pub const RAYON_THREADS: &str = "RAYON_NUM_THREADS";
/// The GPU a run owns, as the physical index or UUID reported by `nvidia-smi`.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";
/// The run id, for logs of wrappers around the worker.
pub const RUN_ID: &str = "OODLAB_RUN_ID";
