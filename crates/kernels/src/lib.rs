//! Kernels for the training step, as candle custom ops. On the CPU: a model calls [`conv2d`],
//! [`batch_norm_train`], [`conv_bn_train`] (the two as one op), [`max_pool2d`] and [`relu`] on
//! CPU f32 tensors and keeps candle's own ops everywhere else. On CUDA (the build with the `cuda`
//! feature), the ops of [`gpu`] where [`gpu_applies`]: cuDNN's convolutions and training
//! batch-norm, ReLU and max-pooling with one-kernel backward passes, SGD's update in one kernel;
//! the rest candle's.
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
#[cfg(feature = "cuda")]
mod cuda_bn;
#[cfg(feature = "cuda")]
mod cuda_pool;
#[cfg(feature = "cuda")]
mod cuda_relu;
#[cfg(feature = "cuda")]
mod cuda_sgd;
#[cfg(feature = "cuda")]
mod cudnn;
#[cfg(feature = "cuda")]
mod cudnn_bn;
pub mod gpu;
#[cfg(feature = "cuda")]
mod gpu_memory;
mod norm;
#[cfg(feature = "cuda")]
mod nvrtc;
mod pool;
pub mod profile;
mod relu;

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};

pub use conv::conv2d;
pub use conv_bn::conv_bn_train;
pub use norm::{batch_norm_train, running_statistics, After, BatchNormOutput, HalfData, RunningStats};
pub use pool::max_pool2d;
pub use relu::relu;

/// The settings of one SGD update (PyTorch's `torch.optim.SGD`), in f32 as the GPU kernel takes
/// them ([`gpu::sgd_step`], CUDA build).
#[derive(Debug, Clone, Copy)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

/// The GPU ops, each of which can be turned off alone (to find which one is wrong, or to time it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuOp {
    /// cuDNN's convolutions (forward and both gradients).
    Conv,
    /// cuDNN's training batch-norm.
    BatchNorm,
    /// SGD's update as one kernel per variable, in place.
    Sgd,
    /// ReLU with a one-kernel backward pass.
    Relu,
    /// Max-pooling as one kernel forward and one backward.
    Pool,
    /// cuDNN's training batch-norm on bf16 and f16 data directly, without casts to f32 and back
    /// around it (with [`GpuOp::BatchNorm`] on). Not in the default set until a GPU has checked it:
    /// `OODLAB_GPU_KERNELS=all` or a list naming `bn16` turns it on.
    BatchNormHalf,
    /// Batch-norm and the ReLU after it, and a ResNet block's last batch-norm, residual addition
    /// and ReLU, each as one op (with [`GpuOp::BatchNorm`] and [`GpuOp::Relu`] on): the
    /// intermediate tensors are not kept for the backward pass.
    Fuse,
    /// The training batch-norm of bf16 and f16 data in this crate's own kernels (cuda_bn.cu), on
    /// the data itself (with [`GpuOp::BatchNorm`] on; before `bn16` if both are on). Not in the
    /// default set until a GPU has checked it: `OODLAB_GPU_KERNELS=all` or a list naming `bn16k`.
    BatchNormHalfKernels,
    /// Batch-norm in evaluation (the running statistics), with the ReLU or a ResNet block's
    /// residual addition and ReLU after it, as one kernel (cuda_bn.cu) instead of three to seven
    /// of candle's passes; the same values.
    BatchNormEval,
}

impl GpuOp {
    pub const ALL: [GpuOp; 9] = [
        GpuOp::Conv,
        GpuOp::BatchNorm,
        GpuOp::Sgd,
        GpuOp::Relu,
        GpuOp::Pool,
        GpuOp::BatchNormHalf,
        GpuOp::Fuse,
        GpuOp::BatchNormHalfKernels,
        GpuOp::BatchNormEval,
    ];

    /// The ops in use when `OODLAB_GPU_KERNELS` is unset: all but `bn16` and `bn16k`, which only a
    /// GPU can check.
    pub const DEFAULT: [GpuOp; 7] =
        [GpuOp::Conv, GpuOp::BatchNorm, GpuOp::Sgd, GpuOp::Relu, GpuOp::Pool, GpuOp::Fuse, GpuOp::BatchNormEval];

    /// Its name in `OODLAB_GPU_KERNELS`.
    pub fn name(self) -> &'static str {
        match self {
            GpuOp::Conv => "conv",
            GpuOp::BatchNorm => "bn",
            GpuOp::Sgd => "sgd",
            GpuOp::Relu => "relu",
            GpuOp::Pool => "pool",
            GpuOp::BatchNormHalf => "bn16",
            GpuOp::Fuse => "fuse",
            GpuOp::BatchNormHalfKernels => "bn16k",
            GpuOp::BatchNormEval => "bneval",
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Whether GPU op `op` applies to `t`: a CUDA tensor in f32, bf16 or f16, in a build with the
/// `cuda` feature, unless `OODLAB_GPU_KERNELS` leaves the op out: `off` (or `0`, `false`) asks for
/// candle's own CUDA ops everywhere, a list such as `conv` for those ops only (to compare with
/// candle's, or to find a faulty one; scripts/gpu-check.sh), `all` for every op. Unset:
/// [`GpuOp::DEFAULT`].
pub fn gpu_applies(op: GpuOp, t: &Tensor) -> bool {
    cfg!(feature = "cuda")
        && t.device().is_cuda()
        && matches!(t.dtype(), DType::F32 | DType::BF16 | DType::F16)
        && gpu_ops() & op.bit() != 0
}

/// The GPU ops this process uses, as `OODLAB_GPU_KERNELS` names them (`off` for none; always
/// `off` in a build without the `cuda` feature).
pub fn gpu_ops_in_use() -> String {
    let on: Vec<&str> = GpuOp::ALL.iter().filter(|op| cfg!(feature = "cuda") && gpu_ops() & op.bit() != 0).map(|op| op.name()).collect();
    if on.is_empty() {
        "off".into()
    } else {
        on.join(",")
    }
}

/// The name of the environment variable that chooses the GPU ops.
pub const GPU_SWITCH: &str = "OODLAB_GPU_KERNELS";

/// The GPU ops' bits, read from `OODLAB_GPU_KERNELS` at the first use.
fn gpu_ops() -> u16 {
    static OPS: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *OPS.get_or_init(|| parse_gpu_ops(std::env::var(GPU_SWITCH).ok().as_deref()))
}

fn parse_gpu_ops(value: Option<&str>) -> u16 {
    let bits = |ops: &[GpuOp]| ops.iter().fold(0, |m, op| m | op.bit());
    match value.map(str::trim) {
        None | Some("" | "on" | "1" | "true") => bits(&GpuOp::DEFAULT),
        Some("all") => bits(&GpuOp::ALL),
        Some("off" | "0" | "false" | "none") => 0,
        Some(list) => {
            list.split(',').filter_map(|name| GpuOp::ALL.into_iter().find(|op| op.name() == name.trim())).fold(0, |m, op| m | op.bit())
        }
    }
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

/// The error of a GPU op's CPU entry point (candle's custom-op traits ask every op for one).
#[cfg(feature = "cuda")]
fn cuda_only<T>(op: &str) -> Result<T> {
    candle_core::bail!("{op} runs on CUDA tensors only")
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

#[cfg(test)]
mod gpu_switch_tests {
    use super::*;

    #[test]
    fn the_gpu_switch_names_ops() {
        let (conv, bn, sgd, relu, pool) =
            (GpuOp::Conv.bit(), GpuOp::BatchNorm.bit(), GpuOp::Sgd.bit(), GpuOp::Relu.bit(), GpuOp::Pool.bit());
        let (bn16, fuse, bn16k, bneval) =
            (GpuOp::BatchNormHalf.bit(), GpuOp::Fuse.bit(), GpuOp::BatchNormHalfKernels.bit(), GpuOp::BatchNormEval.bit());
        assert_eq!(parse_gpu_ops(None), conv | bn | sgd | relu | pool | fuse | bneval, "bf16 batch-norms wait for a GPU's check");
        assert_eq!(parse_gpu_ops(Some("all")), conv | bn | sgd | relu | pool | bn16 | fuse | bn16k | bneval);
        assert_eq!(parse_gpu_ops(Some("bn,bn16k")), bn | bn16k, "`bn16k` is not `bn16`");
        assert_eq!(parse_gpu_ops(Some("conv,bn,relu")), conv | bn | relu, "a list without `fuse` keeps the ops apart");
        assert_eq!(parse_gpu_ops(Some("bn,bn16")), bn | bn16);
        assert_eq!(parse_gpu_ops(Some("off")), 0);
        assert_eq!(parse_gpu_ops(Some("conv")), conv);
        assert_eq!(parse_gpu_ops(Some("bn, conv")), conv | bn);
        assert_eq!(parse_gpu_ops(Some("relu,sgd")), relu | sgd);
        assert_eq!(parse_gpu_ops(Some("pool")), pool);
        assert_eq!(parse_gpu_ops(Some("gelu")), 0, "an unknown name turns nothing on");
    }
}
