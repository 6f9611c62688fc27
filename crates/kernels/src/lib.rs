//! Kernels for the training step, as candle custom ops, and the choice of what computes each op.
//! A model asks [`ops`] for a convolution, a batch-norm (with the ReLU, max-pool, residual
//! addition or convolution fused where a kernel can), a ReLU or a max-pool, and [`ops`] picks: on
//! the CPU this crate's kernels ([`conv2d`], [`batch_norm_train`], [`conv_bn_train`],
//! [`max_pool2d`], [`relu`]) on f32 tensors; on CUDA (the build with the `cuda` feature) the ops
//! of [`gpu`] where [`gpu_applies`]: cuDNN's convolutions and training batch-norm, ReLU and
//! max-pooling with one-kernel backward passes, SGD's update in one kernel; candle's own ops
//! everywhere else (or [`ops::candle`]'s where candle's are wrong or fail).
//!
//! Why: stock candle 0.11 spends a training step of a small CNN mostly outside arithmetic — a
//! direct loop for the convolution's input gradient, many passes and allocations for batch-norm
//! and ReLU gradients, page faults on fresh buffers (docs/performance.md). Here a convolution is
//! im2col per image into a cache-sized buffer and one matrix product (gemm, the crate candle uses)
//! with the bias added in the same pass, its backward pass two more products per image;
//! batch-norm with its ReLU and the max-pool after it is one op, one pass over the images forward
//! and one backward (the window maxima found again from the input); every op's output is one
//! tensor, since each intermediate tensor costs candle's backward pass a zeroed buffer and an
//! addition. For the same reason a convolution followed by batch-norm can run as one op whose
//! full-size output never enters the graph. Work is split over groups of images with rayon
//! (`RAYON_NUM_THREADS`, which the scheduler sets per slot); sums over the batch are made per
//! fixed group and then added in order, so results repeat bit for bit whatever the threads.
//!
//! Each op's backward pass is itself an op without a backward pass; a backward op that produces
//! several gradients returns them packed in one flat tensor, which `unpack` slices.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! let x = Tensor::ones((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
//! let w = Tensor::ones((2, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
//! let y = oodlab_kernels::conv2d(&x, &w, None, 1, 1).unwrap();
//! assert_eq!(y.dims(), &[1, 2, 4, 4]);
//! assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0], 4.0); // a corner sees 4 ones
//! ```

pub mod check;
mod conv;
mod conv_bn;
pub mod gpu;
mod norm;
pub mod ops;
mod pool;
pub mod profile;
mod relu;

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};

pub use conv::conv2d;
pub use conv_bn::conv_bn_train;
pub use norm::{batch_norm_train, running_statistics, After, BatchNormOutput, HalfData, RunningStats};
pub use ops::GpuOp;
pub use ops::{gpu_applies, gpu_ops_in_use, GPU_SWITCH};
pub use pool::max_pool2d;
pub use relu::relu;

/// The settings of one SGD update (PyTorch's `torch.optim.SGD`), in f32 as the GPU kernel takes
/// them ([`ops::sgd_step`], CUDA build).
#[derive(Debug, Clone, Copy)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

static TF32: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether f32 convolutions on a GPU may use TF32 tensor cores: yes by default, as PyTorch's
/// (`torch.backends.cudnn.allow_tf32 = True`); a spec's `train.tf32: false` forbids it. Matrix
/// products keep candle's default, full f32, as PyTorch's (`matmul.allow_tf32 = False`).
pub fn set_tf32(allowed: bool) {
    TF32.store(allowed, std::sync::atomic::Ordering::Relaxed);
}

/// See [`set_tf32`].
pub fn tf32() -> bool {
    TF32.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether these kernels apply to `t`: f32 on the CPU, unless the process was started with
/// `OODLAB_CPU_KERNELS=off`, which asks for candle's own ops everywhere (to check that the kernels
/// do not change a run's results; docs/performance.md).
pub fn applies(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && enabled()
}

/// The name of the environment variable that turns the kernels off (`off`, `0` or `false`).
pub const SWITCH: &str = "OODLAB_CPU_KERNELS";

/// 0: not decided yet (the environment is read at the first use), 1: on, 2: off.
static STATE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Turns the kernels on or off for the rest of the process, whatever the environment said (for
/// tests that compare a model's step with and without them).
pub fn set_enabled(on: bool) {
    STATE.store(if on { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
}

fn enabled() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match STATE.load(Relaxed) {
        0 => {
            let on = !matches!(std::env::var(SWITCH).as_deref(), Ok("off" | "0" | "false"));
            // A concurrent `set_enabled` wins over the environment.
            let _ = STATE.compare_exchange(0, if on { 1 } else { 2 }, Relaxed, Relaxed);
            STATE.load(Relaxed) == 1
        }
        state => state == 1,
    }
}

/// The f32 values of a contiguous CPU tensor's storage, as its layout sees them.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("oodlab-kernels: the input must be contiguous"),
    }
}

fn output(values: Vec<f32>, shape: impl Into<Shape>) -> Result<(CpuStorage, Shape)> {
    Ok((CpuStorage::F32(values), shape.into()))
}

/// Slices `sizes` consecutive pieces out of a flat tensor, each reshaped to its shape.
fn unpack(packed: &Tensor, shapes: &[&[usize]]) -> Result<Vec<Tensor>> {
    let mut at = 0;
    let mut out = Vec::with_capacity(shapes.len());
    for shape in shapes {
        let n: usize = shape.iter().product();
        out.push(packed.narrow(0, at, n)?.reshape(*shape)?);
        at += n;
    }
    Ok(out)
}

thread_local! {
    /// Each thread's scratch buffers for the convolutions' column and output matrices, kept
    /// from call to call: allocated afresh per call they cost page faults on new pages (large
    /// blocks come from the system) every step.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's two scratch buffers, `a` and `b` values long; their contents are
/// whatever the last user left, so `f` must write before it reads. `f` must not call back into
/// rayon (a task stolen meanwhile would find the buffers taken).
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        let (x, y) = &mut *buffers;
        if x.len() < a {
            x.resize(a, 0.0);
        }
        if y.len() < b {
            y.resize(b, 0.0);
        }
        f(&mut x[..a], &mut y[..b])
    })
}

/// A pointer that rayon tasks may share, each writing a part no other task writes.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);

// The only unsafe code of the workspace (with gemm's calls in conv.rs and crates/detectors'
// linalg.rs): kernels that write disjoint parts of one output buffer from several threads.
#[allow(unsafe_code)]
unsafe impl Send for SharedMut {}
#[allow(unsafe_code)]
unsafe impl Sync for SharedMut {}

#[allow(unsafe_code)]
impl SharedMut {
    /// # Safety
    /// `start..start + len` must be in bounds and written by no other task at the same time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn part(&self, start: usize, len: usize) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}
