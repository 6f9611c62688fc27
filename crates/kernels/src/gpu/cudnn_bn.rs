//! Batch-norm in training mode on CUDA through cuDNN (the CUDA build only, feature `cuda`): one
//! kernel forward (batch statistics, normalize, scale, shift) and one backward (the input's,
//! scale's and shift's gradients), where candle's ops take about ten kernels forward and more
//! backward, each with a full-size intermediate tensor (issue #17). Spatial mode, as PyTorch's
//! `cudnn_batch_norm`. The data in f32, or in bf16 or f16 with the statistics, scale and shift in
//! f32: converted to f32 and back inside the op, handed to cuDNN as they are (cuDNN's "pseudo
//! half" configurations, `bn16`), or normalized by this crate's kernels (cuda_bn.rs, `bn16k`);
//! any way a bf16 model needs no casts around its batch-norms.
//! The running statistics are updated in place by one kernel (cuda_bn_running.cu), and the ReLU
//! after a batch-norm, or a ResNet block's residual addition and ReLU, can run inside the same op
//! (cuda_relu.cu, cuda_add_relu.cu), so that the graph does not keep the values in between.
//!
//! cudarc's safe cuDNN wrappers have no batch-norm, and their handles and descriptors do not show
//! their raw pointers, so this file keeps its own handle per device and thread and calls cuDNN's
//! C functions.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::DeviceId;
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp1, CustomOp3, DType, InplaceOp2, Layout, Result, Shape, Storage, Tensor};
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, CudaStream, CudaView, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg, SyncOnDrop};
use half::{bf16, f16};

use super::cuda_bn::Then;
use crate::gpu::cuda::{nchw, uninit};
use crate::gpu::nvrtc::{Module, Suffixes};
use crate::norm::{After, BatchNormOutput, HalfData, RunningStats};

/// PyTorch's `batch_norm(x, training=True)` over a CUDA tensor (n, c, h, w) in f32, bf16 or f16
/// with per-channel f32 `gamma` and `beta`: the output (in x's format), and the batch's mean and
/// biased variance per channel in f32 (detached, for the running statistics). `half` says how
/// bf16 and f16 data are normalized ([`HalfData`]).
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, half: HalfData) -> Result<BatchNormOutput> {
    check_formats(x, gamma, beta)?;
    let saved = Arc::new(Mutex::new(None));
    let op = CudnnBatchNorm { cfg: Cfg { eps, half }, saved: saved.clone(), relu: false };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let c = x.dim(1)?;
    let read = |which| gamma.apply_op1_no_bwd(&ReadSaved { saved: saved.clone(), which, c });
    let mean = read(Which::Mean)?;
    // cuDNN keeps 1/sqrt(var + eps); the running statistics want the variance.
    let var = (read(Which::InvStd)?.sqr()?.recip()? - eps)?;
    Ok(BatchNormOutput { y, mean, var })
}

/// [`batch_norm_train`] as a training step runs it, followed by what `after` says, as one op: the
/// output, with `running` updated in place from the batch's statistics by one kernel
/// (cuda_bn_running.cu: PyTorch's momentum update, rounded as [`crate::running_statistics`], the
/// CPU's). Reading the statistics out as tensors and folding them in with candle's ops took some
/// thirteen launches and allocations per layer: ~260 a ResNet-18 step, ~690 a ResNet-50 step.
///
/// With a ReLU (and a residual added before it, a ResNet block's end) the normalized values and
/// their sum live only inside the op. As separate ops each was a tensor of the graph, kept until
/// the backward pass: two or three activation-sized tensors per ResNet block that PyTorch does not
/// keep (its ReLUs and the residual addition work in place). The values are those of the separate
/// ops bit for bit: the same cuDNN calls, the ReLU of cuda_relu.cu, an addition rounded as
/// candle's (cuda_add_relu.cu), and a backward pass of the ReLU's mask then cuDNN's.
pub fn batch_norm_train_running(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    half: HalfData,
    running: RunningStats,
    after: After,
) -> Result<Tensor> {
    check_formats(x, gamma, beta)?;
    let cfg = Cfg { eps, half };
    let saved = Arc::new(Mutex::new(None));
    let x = x.contiguous()?;
    let y = match after {
        After::Nothing | After::Relu => {
            let relu = matches!(after, After::Relu);
            x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, CudnnBatchNorm { cfg, saved: saved.clone(), relu })?
        }
        After::AddRelu(r) => {
            if r.shape() != x.shape() || r.dtype() != x.dtype() {
                candle_core::bail!("cudnn batch-norm: residual {:?} {:?} for data {:?} {:?}", r.dims(), r.dtype(), x.dims(), x.dtype());
            }
            // The scale and shift as one operand: a custom op takes three.
            let params = Tensor::cat(&[gamma, beta], 0)?;
            x.apply_op3(&params, &r.contiguous()?, CudnnBatchNormAddRelu { cfg, saved: saved.clone(), c: gamma.elem_count() })?
        }
    };
    fold_running(&x, saved, eps, running)?;
    Ok(y)
}

/// Folds the statistics the forward pass of `x` saved into `running`, in place, by one kernel.
fn fold_running(x: &Tensor, saved: SavedSlot, eps: f64, running: RunningStats) -> Result<()> {
    let c = x.dim(1)?;
    for t in [running.mean, running.var] {
        if t.dtype() != DType::F32 || t.elem_count() != c || !t.is_contiguous() {
            candle_core::bail!(
                "cudnn batch-norm: running statistics of {c} contiguous f32 values expected, got {:?} {:?}",
                t.dims(),
                t.dtype()
            );
        }
    }
    let (n, _, h, w) = x.dims4()?;
    let count = (n * h * w) as f64;
    // The factors as candle's ops see them: f64 products, rounded to f32 when applied.
    let op = FoldRunning {
        saved,
        eps: eps as f32,
        keep: (1.0 - running.momentum) as f32,
        momentum: running.momentum as f32,
        var_factor: (running.momentum * count / (count - 1.0)) as f32,
    };
    running.mean.inplace_op2(running.var, &op)
}

fn check_formats(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<()> {
    if !matches!(x.dtype(), DType::F32 | DType::BF16 | DType::F16) || gamma.dtype() != DType::F32 || beta.dtype() != DType::F32 {
        candle_core::bail!(
            "cudnn batch-norm: f32, bf16 or f16 data with f32 scale and shift expected, got {:?}, {:?}, {:?}",
            x.dtype(),
            gamma.dtype(),
            beta.dtype()
        );
    }
    Ok(())
}

/// A batch-norm's epsilon and how it treats half-precision data.
#[derive(Debug, Clone, Copy)]
struct Cfg {
    eps: f64,
    half: HalfData,
}

impl Cfg {
    /// Whether data of `dtype` is normalized in f32 on a converted copy.
    fn via_f32(&self, dtype: DType) -> bool {
        dtype != DType::F32 && self.half == HalfData::ViaF32
    }

    /// Whether data of `dtype` is normalized by this crate's kernels (cuda_bn.cu) rather than cuDNN.
    fn own_kernels(&self, dtype: DType) -> bool {
        dtype != DType::F32 && self.half == HalfData::Kernels
    }
}

static RUNNING_KERNEL: Module = Module { name: "oodlab_bn_running", source: include_str!("cuda_bn_running.cu"), ptx: OnceLock::new() };

/// Folds the saved batch statistics into the running mean (the op's tensor) and variance (its
/// second operand), in place.
struct FoldRunning {
    saved: SavedSlot,
    eps: f32,
    keep: f32,
    momentum: f32,
    var_factor: f32,
}

impl InplaceOp2 for FoldRunning {
    fn name(&self) -> &'static str {
        "oodlab-batch-norm-running-statistics"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, ms: &mut CudaStorage, ml: &Layout, vs: &CudaStorage, vl: &Layout) -> Result<()> {
        let guard = self.saved.lock().expect("not poisoned");
        let Some(saved) = guard.as_ref() else { candle_core::bail!("cudnn batch-norm running statistics before its forward pass") };
        let c = saved.mean.len();
        let ((m0, m1), (v0, v1)) = (offsets(ml)?, offsets(vl)?);
        if m1 - m0 != c || v1 - v0 != c {
            candle_core::bail!("cudnn batch-norm: {} and {} running statistics for {c} channels", m1 - m0, v1 - v0);
        }
        let device = ms.device().clone();
        let func = device.get_or_load_custom_func("oodlab_bn_running", RUNNING_KERNEL.name, RUNNING_KERNEL.ptx()?)?;
        // The running variance is written through its device pointer, as SGD's momentum buffer
        // (cuda_sgd.rs): it is this layer's alone, read and written by the one kernel, element by
        // element.
        let var = vs.as_cuda_slice::<f32>()?.slice(v0..v1);
        let mean = ms.as_cuda_slice_mut::<f32>()?;
        let mut mean = mean.slice_mut(m0..m1);
        let c64 = c as u64;
        let mut builder = func.builder();
        builder.arg(&mut mean);
        builder.arg(&var);
        builder.arg(&saved.mean);
        builder.arg(&saved.inv_std);
        builder.arg(&c64);
        builder.arg(&self.eps);
        builder.arg(&self.keep);
        builder.arg(&self.momentum);
        builder.arg(&self.var_factor);
        // SAFETY: the arguments match the kernel's parameters in order and type; it touches the
        // c values of each of the four, which are c long.
        #[allow(unsafe_code)]
        unsafe {
            builder.launch(LaunchConfig::for_num_elems(c as u32)).map_err(candle_core::Error::wrap)?;
        }
        Ok(())
    }
}

/// The batch's mean and 1/sqrt(var + eps) per channel, as cuDNN's forward pass saved them for its
/// backward pass; and for bf16 or f16 data, the scale's and shift's gradients [dgamma | dbeta] in
/// f32 that the backward pass leaves (its output, the input's gradient, is in the data's format).
struct Saved {
    mean: CudaSlice<f32>,
    inv_std: CudaSlice<f32>,
    param_grads: Option<CudaSlice<f32>>,
}

type SavedSlot = Arc<Mutex<Option<Saved>>>;

/// `bn(x)`, or `relu(bn(x))` as one op, over (x, gamma, beta).
struct CudnnBatchNorm {
    cfg: Cfg,
    saved: SavedSlot,
    relu: bool,
}

/// This file's errors name the op so.
const OP: &str = "cudnn batch-norm";

fn offsets(l: &Layout) -> Result<(usize, usize)> {
    crate::gpu::cuda::offsets(l, OP)
}

fn f32_view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, f32>> {
    crate::gpu::cuda::view(s, l, OP)
}

/// The data (input, output, their gradients) in the model's format.
enum Data<'a> {
    F32(CudaView<'a, f32>),
    Bf16(CudaView<'a, bf16>),
    F16(CudaView<'a, f16>),
}

impl<'a> Data<'a> {
    fn of(s: &'a CudaStorage, l: &Layout) -> Result<Data<'a>> {
        let (a, b) = offsets(l)?;
        Ok(match s.dtype() {
            DType::F32 => Data::F32(s.as_cuda_slice::<f32>()?.slice(a..b)),
            DType::BF16 => Data::Bf16(s.as_cuda_slice::<bf16>()?.slice(a..b)),
            DType::F16 => Data::F16(s.as_cuda_slice::<f16>()?.slice(a..b)),
            other => candle_core::bail!("cudnn batch-norm: {other:?} data"),
        })
    }

    fn ptr<'b>(&'b self, stream: &'b CudaStream) -> (u64, SyncOnDrop<'b>) {
        match self {
            Data::F32(v) => v.device_ptr(stream),
            Data::Bf16(v) => v.device_ptr(stream),
            Data::F16(v) => v.device_ptr(stream),
        }
    }
}

/// A new buffer of data in the model's format.
enum Buffer {
    F32(CudaSlice<f32>),
    Bf16(CudaSlice<bf16>),
    F16(CudaSlice<f16>),
}

impl Buffer {
    /// `n` values of `dtype`, uninitialized: the caller has cuDNN write them all.
    fn uninit(device: &CudaDevice, dtype: DType, n: usize) -> Result<Buffer> {
        // cuDNN writes every value (its beta is 0, so the buffer is not read).
        Ok(match dtype {
            DType::F32 => Buffer::F32(uninit(device, n)?),
            DType::BF16 => Buffer::Bf16(uninit(device, n)?),
            DType::F16 => Buffer::F16(uninit(device, n)?),
            other => candle_core::bail!("cudnn batch-norm: {other:?} data"),
        })
    }

    fn ptr_mut<'b>(&'b mut self, stream: &'b CudaStream) -> (u64, SyncOnDrop<'b>) {
        match self {
            Buffer::F32(v) => v.device_ptr_mut(stream),
            Buffer::Bf16(v) => v.device_ptr_mut(stream),
            Buffer::F16(v) => v.device_ptr_mut(stream),
        }
    }

    fn into_storage(self, device: CudaDevice) -> CudaStorage {
        match self {
            Buffer::F32(v) => CudaStorage::wrap_cuda_slice(v, device),
            Buffer::Bf16(v) => CudaStorage::wrap_cuda_slice(v, device),
            Buffer::F16(v) => CudaStorage::wrap_cuda_slice(v, device),
        }
    }
}

fn status(s: sys::cudnnStatus_t) -> Result<()> {
    s.result().map_err(candle_core::Error::wrap)
}

static ADD_RELU: Module = Module {
    name: "oodlab_add_relu",
    source: concat!(include_str!("cuda_half.cuh"), include_str!("cuda_add_relu.cu")),
    ptx: OnceLock::new(),
};

/// The training batch-norm of `xs` with the scale and shift `gamma` and `beta`, then what `then`
/// says: the output in a new buffer of the data's format, and the statistics saved in `saved` for
/// the backward pass. cuDNN's batch-norm and the ReLU's or the addition's kernel after it; or, for
/// half-precision data with [`HalfData::Kernels`], this crate's kernels, the ReLU or the addition
/// inside the last one (the same roundings: equal to the kernels apart bit for bit). Whatever is
/// in between is freed (in stream order) when this returns.
fn normalize(
    cfg: Cfg,
    saved: &SavedSlot,
    (xs, xl): (&CudaStorage, &Layout),
    gamma: CudaView<f32>,
    beta: CudaView<f32>,
    then: Then,
) -> Result<(CudaStorage, Layout)> {
    let layout = Layout::contiguous(nchw(xl.dims(), OP)?.to_vec());
    if cfg.own_kernels(xs.dtype()) {
        let out = super::cuda_bn::forward(xs, xl, &gamma, &beta, cfg.eps, then)?;
        *saved.lock().expect("not poisoned") = Some(Saved { mean: out.mean, inv_std: out.inv_std, param_grads: None });
        return Ok((out.y, layout));
    }
    let y = normalize_cudnn(cfg, saved, xs, xl, gamma, beta)?;
    let y = match then {
        Then::Nothing => y,
        Then::Relu => super::cuda_relu::relu_storage(&y, &layout)?,
        Then::AddRelu(rs, rl) => {
            let suffixes = Suffixes { f32: "f32", bf16: "bf16", f16: "f16" };
            ADD_RELU.run(None, "oodlab_add_relu", &suffixes, &[(&y, &layout), (rs, rl)], layout.shape().elem_count(), &[])?
        }
    };
    Ok((y, layout))
}

/// cuDNN's training batch-norm of `xs`: the output in a new buffer of the data's format, the
/// statistics saved in `saved`. Half-precision data normalized via f32 is converted with candle's
/// casts, both ways, as the casts around the op rounded it; the copies are freed when this returns.
fn normalize_cudnn(
    cfg: Cfg,
    saved: &SavedSlot,
    xs: &CudaStorage,
    xl: &Layout,
    gamma: CudaView<f32>,
    beta: CudaView<f32>,
) -> Result<CudaStorage> {
    let dims = nchw(xl.dims(), OP)?;
    let layout = Layout::contiguous(dims.to_vec());
    if cfg.via_f32(xs.dtype()) {
        let converted = xs.to_dtype(xl, DType::F32)?;
        let y = normalize_cudnn(Cfg { half: HalfData::Direct, ..cfg }, saved, &converted, &layout, gamma, beta)?;
        return y.to_dtype(&layout, xs.dtype());
    }
    let eps = cfg.eps;
    let device = xs.device.clone();
    let stream = device.cuda_stream();
    let x = Data::of(xs, xl)?;
    let count: usize = dims.iter().product();
    let mut y = Buffer::uninit(&device, xs.dtype(), count)?;
    // cuDNN writes every value of the two.
    let (mut mean, mut inv_std) = (uninit::<f32>(&device, dims[1])?, uninit::<f32>(&device, dims[1])?);
    with_handle(&device, |handle| {
        let (xd, pd) = (Descriptor::new(dims, xs.dtype())?, Descriptor::new([1, dims[1], 1, 1], DType::F32)?);
        let (one, zero) = (1f32, 0f32);
        let (xp, _rx) = x.ptr(&stream);
        let (gp, _rg) = gamma.device_ptr(&stream);
        let (bp, _rb) = beta.device_ptr(&stream);
        let (yp, _wy) = y.ptr_mut(&stream);
        let (mp, _wm) = mean.device_ptr_mut(&stream);
        let (ip, _wi) = inv_std.device_ptr_mut(&stream);
        // SAFETY: the descriptors say the shapes of the buffers passed; no running statistics
        // (null: the caller updates them from the saved mean and variance).
        #[allow(unsafe_code)]
        status(unsafe {
            sys::cudnnBatchNormalizationForwardTraining(
                handle,
                sys::cudnnBatchNormMode_t::CUDNN_BATCHNORM_SPATIAL,
                (&one as *const f32).cast(),
                (&zero as *const f32).cast(),
                xd.0,
                xp as *const c_void,
                xd.0,
                yp as *mut c_void,
                pd.0,
                gp as *const c_void,
                bp as *const c_void,
                0.0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                eps,
                mp as *mut c_void,
                ip as *mut c_void,
            )
        })
    })?;
    *saved.lock().expect("not poisoned") = Some(Saved { mean, inv_std, param_grads: None });
    Ok(y.into_storage(device))
}

impl CustomOp3 for CudnnBatchNorm {
    fn name(&self) -> &'static str {
        if self.relu {
            "oodlab-cudnn-batch-norm-relu"
        } else {
            "oodlab-cudnn-batch-norm"
        }
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
        bs: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let then = if self.relu { Then::Relu } else { Then::Nothing };
        let (y, layout) = normalize(self.cfg, &self.saved, (xs, xl), f32_view(gs, gl)?, f32_view(bs, bl)?, then)?;
        Ok((y, layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, y: &Tensor, gy: &Tensor) -> Result<Grads3> {
        match (self.relu, self.cfg.own_kernels(x.dtype())) {
            // This crate's kernels apply the ReLU's mask as they read the gradient: it is never stored.
            (true, true) => backward(self.cfg, &self.saved, x, gamma, beta, gy, Some(y)),
            (true, false) => backward(self.cfg, &self.saved, x, gamma, beta, &super::cuda_relu::relu_backward(y, gy)?, None),
            (false, _) => backward(self.cfg, &self.saved, x, gamma, beta, gy, None),
        }
    }
}

type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// The gradients of the input, scale and shift from the output's, by cuDNN's backward pass or
/// this crate's kernels; `gy` is the gradient at the normalized values or, with `relu_output`
/// (this crate's kernels only), at the output of the ReLU fused after them.
fn backward(
    cfg: Cfg,
    saved: &SavedSlot,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    gy: &Tensor,
    relu_output: Option<&Tensor>,
) -> Result<Grads3> {
    if relu_output.is_some() && !cfg.own_kernels(x.dtype()) {
        candle_core::bail!("cudnn batch-norm backward: a ReLU's mask is applied by the bn16k kernels only");
    }
    if cfg.via_f32(x.dtype()) {
        // Normalized in f32: so is the backward pass, the input's gradient converted back (what
        // the casts' own backward passes did).
        let direct = Cfg { half: HalfData::Direct, ..cfg };
        let (dx, dgamma, dbeta) = backward(direct, saved, &x.detach().to_dtype(DType::F32)?, gamma, beta, &gy.to_dtype(DType::F32)?, None)?;
        return Ok((dx.map(|d| d.to_dtype(x.dtype())).transpose()?, dgamma, dbeta));
    }
    let op = CudnnBatchNormBackward {
        eps: cfg.eps,
        saved: saved.clone(),
        own_kernels: cfg.own_kernels(x.dtype()),
        relu_output: relu_output.map(Tensor::contiguous).transpose()?,
    };
    let out = x.apply_op3_no_bwd(gamma, &gy.contiguous()?, &op)?;
    if x.dtype() == DType::F32 {
        let mut parts = crate::unpack(&out, &[x.dims(), gamma.dims(), beta.dims()])?.into_iter();
        return Ok((parts.next(), parts.next(), parts.next()));
    }
    // bf16 or f16: `out` is the input's gradient; the scale's and shift's wait in the slot.
    let c = gamma.elem_count();
    let params = gamma.apply_op1_no_bwd(&ReadSaved { saved: saved.clone(), which: Which::ParamGrads, c })?;
    Ok((Some(out), Some(params.narrow(0, 0, c)?.reshape(gamma.shape())?), Some(params.narrow(0, c, c)?.reshape(beta.shape())?)))
}

/// `relu(bn(x) + r)` as one op over (x, [gamma | beta], r).
struct CudnnBatchNormAddRelu {
    cfg: Cfg,
    saved: SavedSlot,
    /// Channels: gamma is the operand's first c values, beta the next c.
    c: usize,
}

impl CustomOp3 for CudnnBatchNormAddRelu {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-batch-norm-add-relu"
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
        let params = f32_view(ps, pl)?;
        if params.len() != 2 * self.c {
            candle_core::bail!("cudnn batch-norm: {} scale and shift values for {} channels", params.len(), self.c);
        }
        let (gamma, beta) = (params.slice(0..self.c), params.slice(self.c..2 * self.c));
        let (y, layout) = normalize(self.cfg, &self.saved, (xs, xl), gamma, beta, Then::AddRelu(rs, rl))?;
        Ok((y, layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, params: &Tensor, _r: &Tensor, y: &Tensor, gy: &Tensor) -> Result<Grads3> {
        // The residual's gradient is the sum's: the output's where the ReLU passed it.
        let g = super::cuda_relu::relu_backward(y, gy)?;
        let (gamma, beta) = (params.narrow(0, 0, self.c)?, params.narrow(0, self.c, self.c)?);
        let (dx, dgamma, dbeta) = backward(self.cfg, &self.saved, x, &gamma, &beta, &g, None)?;
        let dparams = match (dgamma, dbeta) {
            (Some(a), Some(b)) => Some(Tensor::cat(&[&a, &b], 0)?),
            _ => None,
        };
        Ok((dx, dparams, Some(g)))
    }
}

/// The gradients of the input, scale and shift: for f32 data packed [dx | dgamma | dbeta]; for
/// bf16 or f16 data dx in its format, with [dgamma | dbeta] in f32 left in [`Saved`].
struct CudnnBatchNormBackward {
    eps: f64,
    saved: SavedSlot,
    /// This crate's kernels rather than cuDNN's (bf16 or f16 data, [`HalfData::Kernels`]).
    own_kernels: bool,
    /// The output of a ReLU fused after the batch-norm, whose mask the kernels apply to the
    /// gradient given (this crate's kernels only).
    relu_output: Option<Tensor>,
}

impl CustomOp3 for CudnnBatchNormBackward {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-batch-norm-backward"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
        dys: &CudaStorage,
        dyl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dims = nchw(xl.dims(), OP)?;
        let (count, c) = (dims.iter().product::<usize>(), dims[1]);
        let device = xs.device.clone();
        let stream = device.cuda_stream();
        if xs.dtype() != dys.dtype() {
            candle_core::bail!("cudnn batch-norm backward: {:?} input, {:?} gradient", xs.dtype(), dys.dtype());
        }
        let gamma = f32_view(gs, gl)?;
        let mut guard = self.saved.lock().expect("not poisoned");
        let Some(saved) = guard.as_mut() else { candle_core::bail!("cudnn batch-norm backward before its forward pass") };
        if self.own_kernels {
            let relu_output = self.relu_output.as_ref().map(|y| y.storage_and_layout());
            let relu_output = match &relu_output {
                None => None,
                Some((storage, layout)) => match &**storage {
                    Storage::Cuda(s) => Some((s, *layout)),
                    _ => candle_core::bail!("bn16k batch-norm backward: the ReLU's output is not on the GPU"),
                },
            };
            let channels = super::cuda_bn::Channels { gamma: &gamma, mean: &saved.mean, inv_std: &saved.inv_std };
            let (dx, params) = crate::profile::time_on_stream("backward: batch-norm (bn16k)", &stream, || {
                super::cuda_bn::backward((xs, xl), (dys, dyl), relu_output, channels)
            })?;
            saved.param_grads = Some(params);
            return Ok((dx, Shape::from(dims.to_vec())));
        }
        let (x, dy) = (Data::of(xs, xl)?, Data::of(dys, dyl)?);
        let packed = xs.dtype() == DType::F32;
        // f32: one buffer [dx | dgamma | dbeta]; otherwise dx in the data's format and [dgamma |
        // dbeta] in f32 apart. cuDNN writes every value (beta = 0 for the data and the parameters).
        let mut dx_buffer = Buffer::uninit(&device, xs.dtype(), if packed { count + 2 * c } else { count })?;
        let mut params = if packed { None } else { Some(uninit::<f32>(&device, 2 * c)?) };
        crate::profile::time_on_stream("backward: batch-norm (cuDNN)", &stream, || {
            with_handle(&device, |handle| {
                let (xd, pd) = (Descriptor::new(dims, xs.dtype())?, Descriptor::new([1, c, 1, 1], DType::F32)?);
                let (one, zero) = (1f32, 0f32);
                let (xp, _rx) = x.ptr(&stream);
                let (gp, _rg) = gamma.device_ptr(&stream);
                let (dyp, _rdy) = dy.ptr(&stream);
                let (mp, _rm) = saved.mean.device_ptr(&stream);
                let (ip, _ri) = saved.inv_std.device_ptr(&stream);
                let (dx, _wo) = dx_buffer.ptr_mut(&stream);
                let size = std::mem::size_of::<f32>() as u64;
                let (param_base, _wp) = match params.as_mut() {
                    Some(p) => {
                        let (ptr, guard) = p.device_ptr_mut(&stream);
                        (ptr, Some(guard))
                    }
                    None => (dx + count as u64 * size, None),
                };
                let (dgamma, dbeta) = (param_base, param_base + c as u64 * size);
                // SAFETY: as the forward pass; the three outputs are disjoint: parts of one f32
                // buffer, or dx's buffer and the parameters' own.
                #[allow(unsafe_code)]
                status(unsafe {
                    sys::cudnnBatchNormalizationBackward(
                        handle,
                        sys::cudnnBatchNormMode_t::CUDNN_BATCHNORM_SPATIAL,
                        (&one as *const f32).cast(),
                        (&zero as *const f32).cast(),
                        (&one as *const f32).cast(),
                        (&zero as *const f32).cast(),
                        xd.0,
                        xp as *const c_void,
                        xd.0,
                        dyp as *const c_void,
                        xd.0,
                        dx as *mut c_void,
                        pd.0,
                        gp as *const c_void,
                        dgamma as *mut c_void,
                        dbeta as *mut c_void,
                        self.eps,
                        mp as *const c_void,
                        ip as *const c_void,
                    )
                })
            })
        })?;
        let shape = if params.is_some() { Shape::from(dims.to_vec()) } else { Shape::from(count + 2 * c) };
        saved.param_grads = params;
        Ok((dx_buffer.into_storage(device), shape))
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Mean,
    InvStd,
    /// [dgamma | dbeta], 2c values, taken (read once, after the backward pass of bf16 or f16 data).
    ParamGrads,
}

/// A copy of the saved mean or 1/sqrt(var + eps), a tensor of `c` values, or the parameters'
/// gradients (applied to gamma, which only gives it the device).
struct ReadSaved {
    saved: SavedSlot,
    which: Which,
    c: usize,
}

impl CustomOp1 for ReadSaved {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-batch-norm-statistics"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        let mut guard = self.saved.lock().expect("not poisoned");
        let Some(saved) = guard.as_mut() else { candle_core::bail!("cudnn batch-norm statistics read before its forward pass") };
        let copy = |source: &CudaSlice<f32>| s.device.cuda_stream().clone_dtod(source).map_err(candle_core::Error::wrap);
        let (values, len) = match self.which {
            Which::Mean => (copy(&saved.mean)?, self.c),
            Which::InvStd => (copy(&saved.inv_std)?, self.c),
            Which::ParamGrads => {
                let Some(grads) = saved.param_grads.take() else {
                    candle_core::bail!("cudnn batch-norm: parameter gradients read before the backward pass")
                };
                (grads, 2 * self.c)
            }
        };
        Ok((CudaStorage::wrap_cuda_slice(values, s.device.clone()), Shape::from(len)))
    }
}

/// An NCHW tensor descriptor, destroyed when dropped.
struct Descriptor(sys::cudnnTensorDescriptor_t);

impl Descriptor {
    fn new(dims: [usize; 4], dtype: DType) -> Result<Descriptor> {
        let data_type = match dtype {
            DType::F32 => sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            DType::BF16 => sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16,
            DType::F16 => sys::cudnnDataType_t::CUDNN_DATA_HALF,
            other => candle_core::bail!("cudnn batch-norm: {other:?} data"),
        };
        let d = Descriptor(cudarc::cudnn::result::create_tensor_descriptor().map_err(candle_core::Error::wrap)?);
        // SAFETY: `d` was just created and is destroyed only by its Drop.
        #[allow(unsafe_code)]
        unsafe {
            cudarc::cudnn::result::set_tensor4d_descriptor(
                d.0,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                data_type,
                dims.map(|v| v as i32),
            )
            .map_err(candle_core::Error::wrap)?;
        }
        Ok(d)
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: created by `new`, destroyed once.
        #[allow(unsafe_code)]
        let _ = unsafe { cudarc::cudnn::result::destroy_tensor_descriptor(self.0) };
    }
}

/// A raw cuDNN handle bound to a device's stream.
struct Handle(sys::cudnnHandle_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by `with_handle`, destroyed once.
        #[allow(unsafe_code)]
        let _ = unsafe { cudarc::cudnn::result::destroy_handle(self.0) };
    }
}

thread_local! {
    /// Per thread, as cuDNN handles must not be shared between threads without care.
    static HANDLES: RefCell<HashMap<DeviceId, Handle>> = RefCell::new(HashMap::new());
}

fn with_handle<R>(device: &CudaDevice, f: impl FnOnce(sys::cudnnHandle_t) -> Result<R>) -> Result<R> {
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        let handle = match handles.entry(device.id()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let stream = device.cuda_stream();
                stream.context().bind_to_thread().map_err(candle_core::Error::wrap)?;
                let handle = Handle(cudarc::cudnn::result::create_handle().map_err(candle_core::Error::wrap)?);
                // SAFETY: a live handle and the device's stream, which outlives the thread's use.
                #[allow(unsafe_code)]
                unsafe {
                    cudarc::cudnn::result::set_stream(handle.0, stream.cu_stream() as _).map_err(candle_core::Error::wrap)?;
                }
                e.insert(handle)
            }
        };
        f(handle.0)
    })
}
