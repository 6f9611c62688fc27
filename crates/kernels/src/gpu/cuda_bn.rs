//! Training batch-norm of bf16 or f16 data in this crate's own CUDA kernels (cuda_bn.cu; the CUDA
//! build only): the forward pass (batch statistics, then the output, with the ReLU or a residual
//! and ReLU after it) and the backward pass, each three launches that read and write the data in
//! its 16-bit format, with f32 statistics, scale, shift and their gradients. cudnn_bn.rs calls
//! these for [`crate::HalfData::Kernels`] (`bn16k`) in place of cuDNN's calls and keeps the rest
//! (the saved statistics, the running statistics' kernel); the backward kernels apply a fused
//! ReLU's mask as they read the gradient.
//!
//! Why: PyTorch runs a bf16 model's batch-norms in its own kernels on the bf16 data (it gives
//! cuDNN's batch-norm no bf16), about 6 bytes moved per value forward and 10 backward; an f32
//! copy normalized by cuDNN (`HalfData::ViaF32`) moves about three times that, which is a
//! ResNet-50 bf16 step's difference that no other op makes up (issue #17).
//!
//! Also here, for every format: batch-norm in evaluation with what follows it as one kernel
//! ([`batch_norm_eval`]).

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::CudaDType;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use cudarc::driver::{CudaSlice, CudaView, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg};
use half::{bf16, f16};

use crate::gpu::cuda::uninit;
use crate::gpu::nvrtc::Module;
use crate::norm::After;

static KERNELS: Module =
    Module { name: "oodlab_bn", source: concat!(include_str!("cuda_half.cuh"), include_str!("cuda_bn.cu")), ptx: OnceLock::new() };

/// Threads per block of the sums kernels (cuda_bn.cu's OODLAB_BN_THREADS).
const THREADS: u32 = 256;

/// What the forward pass writes after the normalized values.
#[derive(Clone, Copy)]
pub(crate) enum Then<'a> {
    Nothing,
    Relu,
    /// The residual (same shape and format as the data), added before the ReLU.
    AddRelu(&'a CudaStorage, &'a Layout),
}

/// The forward pass's output in the data's format, and the batch's mean and 1/sqrt(var + eps) per
/// channel, as cuDNN saves them.
pub(crate) struct Forward {
    pub y: CudaStorage,
    pub mean: CudaSlice<f32>,
    pub inv_std: CudaSlice<f32>,
}

/// A launch's sizes: channels, values per plane and per channel, all values, blocks per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    pub c: u32,
    pub hw: u32,
    pub m: u32,
    pub total: u64,
    pub blocks: u32,
}

impl Sizes {
    /// The sizes of an (n, c, h, w) batch. Enough blocks per channel that each thread of a sums
    /// kernel adds some 16 values (up to 64 blocks): the first layers' few channels of many
    /// values then still fill the GPU, and a channel's blocks' sums stay few to add.
    pub(crate) fn of(dims: &[usize]) -> Result<Sizes> {
        let &[n, c, h, w] = dims else { candle_core::bail!("bn16k batch-norm: (n, c, h, w) expected, got {dims:?}") };
        let m = n * h * w;
        // The kernels count a channel's values in 32 bits (with a block's stride on top), and its
        // channels index the grid's second dimension.
        if m == 0 || m >= 1 << 31 || c == 0 || c > 65_535 {
            candle_core::bail!(
                "bn16k batch-norm: {n}x{c}x{h}x{w} is outside its limits (1 to 2^31 values per channel, 1 to 65535 channels)"
            );
        }
        let blocks = m.div_ceil(THREADS as usize * 16).clamp(1, 64);
        Ok(Sizes { c: c as u32, hw: (h * w) as u32, m: m as u32, total: (n * c * h * w) as u64, blocks: blocks as u32 })
    }

    fn sums_launch(&self) -> LaunchConfig {
        LaunchConfig { grid_dim: (self.blocks, self.c, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
    }

    fn per_channel_launch(&self) -> LaunchConfig {
        LaunchConfig::for_num_elems(self.c)
    }

    /// The apply kernels take four values a thread (cuda_bn.cu's OODLAB_BN_RUN).
    fn apply_launch(&self) -> LaunchConfig {
        LaunchConfig::for_num_elems(self.total.div_ceil(4).clamp(1, 1 << 20) as u32)
    }
}

/// A contiguous view (crate::gpu::cuda::view) named as this file's errors name the op.
fn view<'a, T: CudaDType + DeviceRepr>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    crate::gpu::cuda::view(s, l, "bn16k batch-norm")
}

fn suffix(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::BF16 => Ok("bf16"),
        DType::F16 => Ok("f16"),
        other => candle_core::bail!("bn16k batch-norm: bf16 or f16 data expected, got {other:?}"),
    }
}

/// The forward pass over `xs` (contiguous (n, c, h, w), bf16 or f16) with the scale `gamma` and
/// shift `beta` (c values each, f32).
pub(crate) fn forward(xs: &CudaStorage, xl: &Layout, gamma: &CudaView<f32>, beta: &CudaView<f32>, eps: f64, then: Then) -> Result<Forward> {
    match xs.dtype() {
        DType::BF16 => forward_in::<bf16>(xs, xl, gamma, beta, eps, then),
        DType::F16 => forward_in::<f16>(xs, xl, gamma, beta, eps, then),
        other => candle_core::bail!("bn16k batch-norm: bf16 or f16 data expected, got {other:?}"),
    }
}

fn forward_in<T: CudaDType + DeviceRepr>(
    xs: &CudaStorage,
    xl: &Layout,
    gamma: &CudaView<f32>,
    beta: &CudaView<f32>,
    eps: f64,
    then: Then,
) -> Result<Forward> {
    let sizes = Sizes::of(xl.dims())?;
    let Sizes { c, hw, m, total, blocks } = sizes;
    if gamma.len() != c as usize || beta.len() != c as usize {
        candle_core::bail!("bn16k batch-norm: {} scale and {} shift values for {c} channels", gamma.len(), beta.len());
    }
    let device = xs.device().clone();
    let suffix = suffix(xs.dtype())?;
    let ptx = KERNELS.ptx()?;
    let x = view::<T>(xs, xl)?;
    let mut partials = uninit::<f32>(&device, 2 * (c * blocks) as usize)?;
    let (mut mean, mut inv_std) = (uninit::<f32>(&device, c as usize)?, uninit::<f32>(&device, c as usize)?);
    let mut y = uninit::<T>(&device, total as usize)?;
    let eps = eps as f32;

    let func = device.get_or_load_custom_func(&format!("oodlab_bn_sums_{suffix}"), KERNELS.name, ptx)?;
    let mut b = func.builder();
    b.arg(&x).arg(&mut partials).arg(&c).arg(&hw).arg(&m);
    // SAFETY (each launch here): the arguments are the kernel's parameters in order and type
    // (cuda_bn.cu); it reads within the c-channel views of `total` values whose sizes `sizes`
    // gives, and writes within the buffers allocated above for the same sizes.
    #[allow(unsafe_code)]
    unsafe {
        b.launch(sizes.sums_launch()).map_err(candle_core::Error::wrap)?;
    }

    let func = device.get_or_load_custom_func(&format!("oodlab_bn_statistics_{suffix}"), KERNELS.name, ptx)?;
    let mut b = func.builder();
    b.arg(&x).arg(&partials).arg(&mut mean).arg(&mut inv_std).arg(&c).arg(&hw).arg(&m).arg(&blocks).arg(&eps);
    #[allow(unsafe_code)]
    unsafe {
        b.launch(sizes.per_channel_launch()).map_err(candle_core::Error::wrap)?;
    }

    let kernel = match then {
        Then::Nothing => format!("oodlab_bn_apply_{suffix}"),
        Then::Relu => format!("oodlab_bn_apply_relu_{suffix}"),
        Then::AddRelu(..) => format!("oodlab_bn_apply_add_relu_{suffix}"),
    };
    let func = device.get_or_load_custom_func(&kernel, KERNELS.name, ptx)?;
    let residual = match then {
        Then::AddRelu(rs, rl) => {
            if rs.dtype() != xs.dtype() || rl.dims() != xl.dims() {
                candle_core::bail!("bn16k batch-norm: residual {:?} {:?} for data {:?} {:?}", rl.dims(), rs.dtype(), xl.dims(), xs.dtype());
            }
            Some(view::<T>(rs, rl)?)
        }
        _ => None,
    };
    let mut b = func.builder();
    b.arg(&x);
    if let Some(r) = &residual {
        b.arg(r);
    }
    b.arg(&mean).arg(&inv_std).arg(gamma).arg(beta).arg(&mut y).arg(&total).arg(&c).arg(&hw);
    #[allow(unsafe_code)]
    unsafe {
        b.launch(sizes.apply_launch()).map_err(candle_core::Error::wrap)?;
    }
    Ok(Forward { y: CudaStorage::wrap_cuda_slice(y, device), mean, inv_std })
}

/// The per-channel values the backward pass takes: the scale, and the statistics the forward
/// pass saved.
pub(crate) struct Channels<'a> {
    pub gamma: &'a CudaView<'a, f32>,
    pub mean: &'a CudaSlice<f32>,
    pub inv_std: &'a CudaSlice<f32>,
}

/// The backward pass: the input's gradient in the data's format, and [dgamma | dbeta] in f32,
/// from the data `xs` and the gradient `dys` at the normalized values, or, with `relu_output`,
/// at the output of the ReLU fused after them (then passed where that output is positive, as the
/// ReLU's backward pass would, without storing the result). All contiguous, of one shape and
/// format.
pub(crate) fn backward(
    (xs, xl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
    relu_output: Option<(&CudaStorage, &Layout)>,
    channels: Channels,
) -> Result<(CudaStorage, CudaSlice<f32>)> {
    let same = |(s, l): (&CudaStorage, &Layout)| s.dtype() == xs.dtype() && l.dims() == xl.dims();
    if !same((dys, dyl)) || !relu_output.is_none_or(same) {
        candle_core::bail!("bn16k batch-norm backward: data {:?} {:?}, gradient {:?} {:?}", xl.dims(), xs.dtype(), dyl.dims(), dys.dtype());
    }
    match xs.dtype() {
        DType::BF16 => backward_in::<bf16>((xs, xl), (dys, dyl), relu_output, channels),
        DType::F16 => backward_in::<f16>((xs, xl), (dys, dyl), relu_output, channels),
        other => candle_core::bail!("bn16k batch-norm: bf16 or f16 data expected, got {other:?}"),
    }
}

fn backward_in<T: CudaDType + DeviceRepr>(
    (xs, xl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
    relu_output: Option<(&CudaStorage, &Layout)>,
    Channels { gamma, mean, inv_std }: Channels,
) -> Result<(CudaStorage, CudaSlice<f32>)> {
    let sizes = Sizes::of(xl.dims())?;
    let Sizes { c, hw, m, total, blocks } = sizes;
    if gamma.len() != c as usize || mean.len() != c as usize || inv_std.len() != c as usize {
        candle_core::bail!("bn16k batch-norm backward: per-channel values of another size than {c} channels");
    }
    let device = xs.device().clone();
    let suffix = suffix(xs.dtype())?;
    let ptx = KERNELS.ptx()?;
    let (x, dy) = (view::<T>(xs, xl)?, view::<T>(dys, dyl)?);
    let mask = relu_output.map(|(s, l)| view::<T>(s, l)).transpose()?;
    let null = 0u64;
    let mut partials = uninit::<f32>(&device, 2 * (c * blocks) as usize)?;
    let mut params = uninit::<f32>(&device, 2 * c as usize)?;
    let mut coefficients = uninit::<f32>(&device, 3 * c as usize)?;
    let mut dx = uninit::<T>(&device, total as usize)?;

    let func = device.get_or_load_custom_func(&format!("oodlab_bn_backward_sums_{suffix}"), KERNELS.name, ptx)?;
    let mut b = func.builder();
    b.arg(&x).arg(&dy);
    push_mask(&mut b, &mask, &null);
    b.arg(mean).arg(&mut partials).arg(&c).arg(&hw).arg(&m);
    // SAFETY: as in `forward_in`.
    #[allow(unsafe_code)]
    unsafe {
        b.launch(sizes.sums_launch()).map_err(candle_core::Error::wrap)?;
    }

    let func = device.get_or_load_custom_func("oodlab_bn_backward_statistics", KERNELS.name, ptx)?;
    let mut b = func.builder();
    b.arg(&partials).arg(gamma).arg(inv_std).arg(&mut params).arg(&mut coefficients).arg(&c).arg(&m).arg(&blocks);
    #[allow(unsafe_code)]
    unsafe {
        b.launch(sizes.per_channel_launch()).map_err(candle_core::Error::wrap)?;
    }

    let func = device.get_or_load_custom_func(&format!("oodlab_bn_backward_apply_{suffix}"), KERNELS.name, ptx)?;
    let mut b = func.builder();
    b.arg(&x).arg(&dy);
    push_mask(&mut b, &mask, &null);
    b.arg(mean).arg(&coefficients).arg(&mut dx).arg(&total).arg(&c).arg(&hw);
    #[allow(unsafe_code)]
    unsafe {
        b.launch(sizes.apply_launch()).map_err(candle_core::Error::wrap)?;
    }
    Ok((CudaStorage::wrap_cuda_slice(dx, device), params))
}

/// Pushes the fused ReLU's output as the mask argument, or without a ReLU a null pointer (the
/// kernels test it).
fn push_mask<'a, T>(b: &mut LaunchArgs<'a>, mask: &'a Option<CudaView<'_, T>>, null: &'a u64) {
    match mask {
        Some(mask) => b.arg(mask),
        None => b.arg(null),
    };
}

/// Batch-norm in evaluation over a CUDA tensor (n, c, h, w) in f32, bf16 or f16: `x * scale +
/// shift` per channel (`scale` and `shift`: c values each, f32, computed from the running
/// statistics by the caller), then what `after` says, in one kernel (cuda_bn.cu,
/// `oodlab_bn_eval`), rounded as candle's ops apart would round them (in f32, the data converted
/// exactly, the result rounded once to the data's format). No backward pass: evaluation only.
pub fn batch_norm_eval(x: &Tensor, scale: &Tensor, shift: &Tensor, after: After) -> Result<Tensor> {
    let c = x.dim(1)?;
    if scale.dtype() != DType::F32 || shift.dtype() != DType::F32 || scale.elem_count() != c || shift.elem_count() != c {
        candle_core::bail!("batch-norm eval: {c} f32 scale and shift values expected, got {:?} and {:?}", scale.dims(), shift.dims());
    }
    let params = Tensor::cat(&[scale.flatten_all()?, shift.flatten_all()?], 0)?;
    let x = x.contiguous()?;
    match after {
        After::Nothing => x.apply_op2_no_bwd(&params, &Eval { relu: false }),
        After::Relu => x.apply_op2_no_bwd(&params, &Eval { relu: true }),
        After::AddRelu(r) => {
            if r.shape() != x.shape() || r.dtype() != x.dtype() {
                candle_core::bail!("batch-norm eval: residual {:?} {:?} for data {:?} {:?}", r.dims(), r.dtype(), x.dims(), x.dtype());
            }
            x.apply_op3_no_bwd(&params, &r.contiguous()?, &EvalAddRelu)
        }
    }
}

/// `bn(x)` or `relu(bn(x))` in evaluation over (x, [scale | shift]).
struct Eval {
    relu: bool,
}

/// `relu(bn(x) + r)` in evaluation over (x, [scale | shift], r).
struct EvalAddRelu;

fn eval_storage(
    kernel: &str,
    (xs, xl): (&CudaStorage, &Layout),
    (ps, pl): (&CudaStorage, &Layout),
    residual: Option<(&CudaStorage, &Layout)>,
) -> Result<(CudaStorage, Shape)> {
    match xs.dtype() {
        DType::F32 => eval_in::<f32>(kernel, "f32", (xs, xl), (ps, pl), residual),
        DType::BF16 => eval_in::<bf16>(kernel, "bf16", (xs, xl), (ps, pl), residual),
        DType::F16 => eval_in::<f16>(kernel, "f16", (xs, xl), (ps, pl), residual),
        other => candle_core::bail!("batch-norm eval: f32, bf16 or f16 data expected, got {other:?}"),
    }
}

fn eval_in<T: CudaDType + DeviceRepr>(
    kernel: &str,
    suffix: &str,
    (xs, xl): (&CudaStorage, &Layout),
    (ps, pl): (&CudaStorage, &Layout),
    residual: Option<(&CudaStorage, &Layout)>,
) -> Result<(CudaStorage, Shape)> {
    let sizes = Sizes::of(xl.dims())?;
    let Sizes { c, hw, total, .. } = sizes;
    let params = view::<f32>(ps, pl)?;
    if params.len() != 2 * c as usize {
        candle_core::bail!("batch-norm eval: {} scale and shift values for {c} channels", params.len());
    }
    let (scale, shift) = (params.slice(0..c as usize), params.slice(c as usize..2 * c as usize));
    let device = xs.device().clone();
    let x = view::<T>(xs, xl)?;
    let residual = residual.map(|(s, l)| view::<T>(s, l)).transpose()?;
    let mut y = uninit::<T>(&device, total as usize)?;
    let func = device.get_or_load_custom_func(&format!("{kernel}_{suffix}"), KERNELS.name, KERNELS.ptx()?)?;
    let mut b = func.builder();
    b.arg(&x);
    if let Some(r) = &residual {
        b.arg(r);
    }
    b.arg(&scale).arg(&shift).arg(&mut y).arg(&total).arg(&c).arg(&hw);
    // SAFETY: as in `forward_in`: the kernel's parameters in order and type; it reads and writes
    // within the `total` values of the views and of `y`, and the c values of scale and shift.
    #[allow(unsafe_code)]
    unsafe {
        b.launch(sizes.apply_launch()).map_err(candle_core::Error::wrap)?;
    }
    Ok((CudaStorage::wrap_cuda_slice(y, device), xl.shape().clone()))
}

impl CustomOp2 for Eval {
    fn name(&self) -> &'static str {
        if self.relu {
            "oodlab-batch-norm-eval-relu"
        } else {
            "oodlab-batch-norm-eval"
        }
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, ps: &CudaStorage, pl: &Layout) -> Result<(CudaStorage, Shape)> {
        eval_storage(if self.relu { "oodlab_bn_eval_relu" } else { "oodlab_bn_eval" }, (xs, xl), (ps, pl), None)
    }
}

impl CustomOp3 for EvalAddRelu {
    fn name(&self) -> &'static str {
        "oodlab-batch-norm-eval-add-relu"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ps: &CudaStorage,
        pl: &Layout,
        rs: &CudaStorage,
        rl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        eval_storage("oodlab_bn_eval_add_relu", (xs, xl), (ps, pl), Some((rs, rl)))
    }
}
