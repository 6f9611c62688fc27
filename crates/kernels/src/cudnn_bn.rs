//! Batch-norm in training mode on CUDA through cuDNN (the CUDA build only, feature `cuda`): one
//! kernel forward (batch statistics, normalize, scale, shift) and one backward (the input's,
//! scale's and shift's gradients), where candle's ops take about ten kernels forward and more
//! backward, each with a full-size intermediate tensor (issue #17). f32 (a model casts to its
//! master format before batch-norm), spatial mode, as PyTorch's `cudnn_batch_norm`.
//!
//! cudarc's safe cuDNN wrappers have no batch-norm, and their handles and descriptors do not show
//! their raw pointers, so this file keeps its own handle per device and thread and calls cuDNN's
//! C functions.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use candle_core::cuda_backend::DeviceId;
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

use crate::norm::BatchNormOutput;

/// PyTorch's `batch_norm(x, training=True)` over an f32 CUDA tensor (n, c, h, w) with per-channel
/// `gamma` and `beta`: the output, and the batch's mean and biased variance per channel (detached,
/// for the running statistics).
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<BatchNormOutput> {
    if x.dtype() != DType::F32 || gamma.dtype() != DType::F32 || beta.dtype() != DType::F32 {
        candle_core::bail!("cudnn batch-norm: f32 expected, got {:?}, {:?}, {:?}", x.dtype(), gamma.dtype(), beta.dtype());
    }
    let c = x.dim(1)?;
    let saved = Arc::new(Mutex::new(None));
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, CudnnBatchNorm { eps, saved: saved.clone() })?;
    let read = |which| gamma.apply_op1_no_bwd(&ReadSaved { saved: saved.clone(), which, c });
    let mean = read(Which::Mean)?;
    // cuDNN keeps 1/sqrt(var + eps); the running statistics want the variance.
    let var = (read(Which::InvStd)?.sqr()?.recip()? - eps)?;
    Ok(BatchNormOutput { y, mean, var })
}

/// The batch's mean and 1/sqrt(var + eps) per channel, as cuDNN's forward pass saved them for its
/// backward pass.
struct Saved {
    mean: CudaSlice<f32>,
    inv_std: CudaSlice<f32>,
}

type SavedSlot = Arc<Mutex<Option<Saved>>>;

struct CudnnBatchNorm {
    eps: f64,
    saved: SavedSlot,
}

fn f32_view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<cudarc::driver::CudaView<'a, f32>> {
    let Some((start, end)) = l.contiguous_offsets() else { candle_core::bail!("cudnn batch-norm: the inputs must be contiguous") };
    Ok(s.as_cuda_slice::<f32>()?.slice(start..end))
}

fn status(s: sys::cudnnStatus_t) -> Result<()> {
    s.result().map_err(candle_core::Error::wrap)
}

impl CustomOp3 for CudnnBatchNorm {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-batch-norm"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::cuda_only(self.name())
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
        let dims = dims4(xl.dims())?;
        let device = xs.device.clone();
        let stream = device.cuda_stream();
        let (x, gamma, beta) = (f32_view(xs, xl)?, f32_view(gs, gl)?, f32_view(bs, bl)?);
        let count: usize = dims.iter().product();
        // SAFETY: cuDNN writes every value of the three (beta = 0: the output is not read).
        #[allow(unsafe_code)]
        let (mut y, mut mean, mut inv_std) =
            unsafe { (device.alloc::<f32>(count)?, device.alloc::<f32>(dims[1])?, device.alloc::<f32>(dims[1])?) };
        with_handle(&device, |handle| {
            let (xd, pd) = (Descriptor::new(dims)?, Descriptor::new([1, dims[1], 1, 1])?);
            let (one, zero) = (1f32, 0f32);
            let (xp, _rx) = x.device_ptr(&stream);
            let (gp, _rg) = gamma.device_ptr(&stream);
            let (bp, _rb) = beta.device_ptr(&stream);
            let (yp, _wy) = y.device_ptr_mut(&stream);
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
                    self.eps,
                    mp as *mut c_void,
                    ip as *mut c_void,
                )
            })
        })?;
        *self.saved.lock().expect("not poisoned") = Some(Saved { mean, inv_std });
        Ok((CudaStorage::wrap_cuda_slice(y, device), Shape::from(dims.to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = CudnnBatchNormBackward { eps: self.eps, saved: self.saved.clone() };
        let packed = x.apply_op3_no_bwd(gamma, &gy.contiguous()?, &op)?;
        let mut parts = crate::unpack(&packed, &[x.dims(), gamma.dims(), beta.dims()])?.into_iter();
        Ok((parts.next(), parts.next(), parts.next()))
    }
}

/// The gradients of the input, scale and shift, packed [dx | dgamma | dbeta].
struct CudnnBatchNormBackward {
    eps: f64,
    saved: SavedSlot,
}

impl CustomOp3 for CudnnBatchNormBackward {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-batch-norm-backward"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        crate::cuda_only(self.name())
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
        let dims = dims4(xl.dims())?;
        let (count, c) = (dims.iter().product::<usize>(), dims[1]);
        let device = xs.device.clone();
        let stream = device.cuda_stream();
        let (x, gamma, dy) = (f32_view(xs, xl)?, f32_view(gs, gl)?, f32_view(dys, dyl)?);
        let saved = self.saved.lock().expect("not poisoned");
        let Some(saved) = saved.as_ref() else { candle_core::bail!("cudnn batch-norm backward before its forward pass") };
        // SAFETY: cuDNN writes every value (beta = 0 for the data and the parameters).
        #[allow(unsafe_code)]
        let mut packed = unsafe { device.alloc::<f32>(count + 2 * c)? };
        let sync = || device.cuda_stream().synchronize().map_err(candle_core::Error::wrap);
        crate::profile::time_with("backward: batch-norm (cuDNN)", sync, || {
            with_handle(&device, |handle| {
                let (xd, pd) = (Descriptor::new(dims)?, Descriptor::new([1, c, 1, 1])?);
                let (one, zero) = (1f32, 0f32);
                let (xp, _rx) = x.device_ptr(&stream);
                let (gp, _rg) = gamma.device_ptr(&stream);
                let (dyp, _rdy) = dy.device_ptr(&stream);
                let (mp, _rm) = saved.mean.device_ptr(&stream);
                let (ip, _ri) = saved.inv_std.device_ptr(&stream);
                let (out, _wo) = packed.device_ptr_mut(&stream);
                let size = std::mem::size_of::<f32>() as u64;
                let (dx, dgamma, dbeta) = (out, out + count as u64 * size, out + (count + c) as u64 * size);
                // SAFETY: as the forward pass; the three outputs are disjoint parts of `packed`.
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
        Ok((CudaStorage::wrap_cuda_slice(packed, device), Shape::from(count + 2 * c)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Mean,
    InvStd,
}

/// A copy of the saved mean or 1/sqrt(var + eps), as a tensor of `c` values (applied to gamma,
/// which only gives it the device).
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
        crate::cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        let saved = self.saved.lock().expect("not poisoned");
        let Some(saved) = saved.as_ref() else { candle_core::bail!("cudnn batch-norm statistics read before its forward pass") };
        let source = match self.which {
            Which::Mean => &saved.mean,
            Which::InvStd => &saved.inv_std,
        };
        let copy = s.device.cuda_stream().clone_dtod(source).map_err(candle_core::Error::wrap)?;
        Ok((CudaStorage::wrap_cuda_slice(copy, s.device.clone()), Shape::from(self.c)))
    }
}

fn dims4(d: &[usize]) -> Result<[usize; 4]> {
    match d {
        &[n, c, h, w] => Ok([n, c, h, w]),
        other => candle_core::bail!("cudnn batch-norm: (n, c, h, w) expected, got {other:?}"),
    }
}

/// An f32 NCHW tensor descriptor, destroyed when dropped.
struct Descriptor(sys::cudnnTensorDescriptor_t);

impl Descriptor {
    fn new(dims: [usize; 4]) -> Result<Descriptor> {
        let d = Descriptor(cudarc::cudnn::result::create_tensor_descriptor().map_err(candle_core::Error::wrap)?);
        // SAFETY: `d` was just created and is destroyed only by its Drop.
        #[allow(unsafe_code)]
        unsafe {
            cudarc::cudnn::result::set_tensor4d_descriptor(
                d.0,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
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
