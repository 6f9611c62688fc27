//! Convolutions on CUDA through cuDNN, as candle custom ops: forward, input gradient and kernel
//! gradient (the CUDA build only, feature `cuda`).
//!
//! Why: candle 0.11 computes a convolution's input gradient with a one-thread-per-output
//! transposed-convolution kernel and its kernel gradient with its naive convolution over
//! transposed tensors, both even where no gradient is needed, and its own cuDNN forward picks an
//! algorithm and allocates a zeroed workspace on every call (issue #17, docs/performance.md). Here
//! the three are cuDNN's, chosen by cuDNN's heuristics as PyTorch does with
//! `cudnn.benchmark = False`; the descriptors and the chosen algorithms are kept per shape, dtype
//! and math mode, and the workspace per device, growing only. The input gradient is skipped when
//! the input needs none (the images).
//!
//! Math modes as PyTorch's defaults: f32 convolutions may use TF32 tensor cores
//! (`torch.backends.cudnn.allow_tf32 = True`) unless [`crate::set_tf32`]`(false)` (a spec's
//! `train.tf32: false`); bf16 and f16 use tensor cores and accumulate in f32.

use std::any::Any;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDType, DeviceId};
use candle_core::{CudaDevice, CudaStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use cudarc::cudnn::safe::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, CudnnDataType, FilterDescriptor, TensorDescriptor,
};
use cudarc::cudnn::sys::{cudnnConvolutionMode_t, cudnnMathType_t, cudnnTensorFormat_t};
use cudarc::driver::{CudaSlice, DeviceRepr};

use crate::gpu::cuda::{padded4, uninit, view};

/// `x` (n, c, h, w) convolved with `w` (o, c, k, k) on CUDA with cuDNN: (n, o, ho, wo), as
/// PyTorch's conv2d without bias, with `groups = dilation = 1`.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, CudnnConv { geometry: Geometry { stride, padding } })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Geometry {
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn output(&self, x: &[usize], w: &[usize]) -> Result<[usize; 4]> {
        let (&[n, c, h, wd], &[o, ci, kh, kw]) = (x, w) else {
            candle_core::bail!("cudnn conv2d: 4-d input and kernel expected, got {x:?} and {w:?}")
        };
        if ci != c || h + 2 * self.padding < kh || wd + 2 * self.padding < kw || self.stride == 0 {
            candle_core::bail!("cudnn conv2d: input {x:?} and kernel {w:?} do not fit (stride {}, padding {})", self.stride, self.padding);
        }
        let side = |size: usize, k: usize| (size + 2 * self.padding - k) / self.stride + 1;
        Ok([n, o, side(h, kh), side(wd, kw)])
    }
}

/// The forward convolution; its backward pass is [`CudnnConvData`] and [`CudnnConvFilter`].
struct CudnnConv {
    geometry: Geometry,
}

/// The input's gradient from the kernel and the output's gradient.
struct CudnnConvData {
    geometry: Geometry,
    input: [usize; 4],
}

/// The kernel's gradient from the input and the output's gradient.
struct CudnnConvFilter {
    geometry: Geometry,
    kernel: [usize; 4],
}

impl CustomOp2 for CudnnConv {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-conv2d"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, ws: &CudaStorage, wl: &Layout) -> Result<(CudaStorage, Shape)> {
        let y = self.geometry.output(xl.dims(), wl.dims())?;
        let shapes = Shapes { x: padded4(xl.dims()), w: padded4(wl.dims()), y };
        let out = run(Kind::Forward, self.geometry, shapes, xs, xl, ws, wl)?;
        Ok((out, Shape::from(y.to_vec())))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gy = gy.contiguous()?;
        let input = padded4(x.dims());
        let kernel = padded4(w.dims());
        // The images need no gradient: skip the product that would make it.
        let dx = if x.track_op() { Some(w.apply_op2_no_bwd(&gy, &CudnnConvData { geometry: self.geometry, input })?) } else { None };
        let dw = x.apply_op2_no_bwd(&gy, &CudnnConvFilter { geometry: self.geometry, kernel })?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp2 for CudnnConvData {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-conv2d-data"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, ws: &CudaStorage, wl: &Layout, gs: &CudaStorage, gl: &Layout) -> Result<(CudaStorage, Shape)> {
        let shapes = Shapes { x: self.input, w: padded4(wl.dims()), y: padded4(gl.dims()) };
        if self.geometry.output(&self.input, wl.dims())? != shapes.y {
            candle_core::bail!("cudnn conv2d backward: gradient {:?} is not the output of {:?} by {:?}", gl.dims(), self.input, wl.dims());
        }
        let out = run(Kind::Data, self.geometry, shapes, ws, wl, gs, gl)?;
        Ok((out, Shape::from(self.input.to_vec())))
    }
}

impl CustomOp2 for CudnnConvFilter {
    fn name(&self) -> &'static str {
        "oodlab-cudnn-conv2d-filter"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        crate::gpu::cuda::cuda_only(self.name())
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, gs: &CudaStorage, gl: &Layout) -> Result<(CudaStorage, Shape)> {
        let shapes = Shapes { x: padded4(xl.dims()), w: self.kernel, y: padded4(gl.dims()) };
        if self.geometry.output(xl.dims(), &self.kernel)? != shapes.y {
            candle_core::bail!("cudnn conv2d backward: gradient {:?} is not the output of {:?} by {:?}", gl.dims(), xl.dims(), self.kernel);
        }
        let out = run(Kind::Filter, self.geometry, shapes, xs, xl, gs, gl)?;
        Ok((out, Shape::from(self.kernel.to_vec())))
    }
}

/// Which of the three products; the two inputs of each, in order: forward (x, w), data (w, dy),
/// filter (x, dy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Forward,
    Data,
    Filter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Shapes {
    x: [usize; 4],
    w: [usize; 4],
    y: [usize; 4],
}

/// Runs one of the products on the two inputs' storage, in their dtype.
fn run(kind: Kind, g: Geometry, shapes: Shapes, a: &CudaStorage, al: &Layout, b: &CudaStorage, bl: &Layout) -> Result<CudaStorage> {
    match a.dtype() {
        DType::F32 => run_typed::<f32>(kind, g, shapes, a, al, b, bl),
        DType::BF16 => run_typed::<half::bf16>(kind, g, shapes, a, al, b, bl),
        DType::F16 => run_typed::<half::f16>(kind, g, shapes, a, al, b, bl),
        other => candle_core::bail!("cudnn conv2d: {other:?} is not supported (f32, bf16, f16)"),
    }
}

fn run_typed<T>(kind: Kind, g: Geometry, shapes: Shapes, a: &CudaStorage, al: &Layout, b: &CudaStorage, bl: &Layout) -> Result<CudaStorage>
where
    T: CudaDType + DeviceRepr + WithDType + CudnnDataType + 'static,
{
    let device = a.device.clone();
    let tf32 = crate::tf32();
    let (av, bv) = (view::<T>(a, al, "cudnn conv2d")?, view::<T>(b, bl, "cudnn conv2d")?);
    let out_len: usize = match kind {
        Kind::Forward => shapes.y.iter().product(),
        Kind::Data => shapes.x.iter().product(),
        Kind::Filter => shapes.w.iter().product(),
    };
    // cuDNN writes every value of the output (beta = 0 never reads it).
    let mut out = uninit::<T>(&device, out_len)?;
    let part = match kind {
        Kind::Forward => "conv forward (cuDNN)",
        Kind::Data => "backward: conv input gradient (cuDNN)",
        Kind::Filter => "backward: conv kernel gradient (cuDNN)",
    };
    crate::profile::time_on_stream(part, &device.cuda_stream(), || {
        with_plan::<T, _>(&device, g, shapes, kind, tf32, |plan, workspace| {
            let one_zero = (T::one(), T::zero());
            // SAFETY: the descriptors were made for these shapes and this dtype; the views are
            // contiguous NCHW and as long as their descriptors say.
            #[allow(unsafe_code)]
            unsafe {
                match kind {
                    Kind::Forward => {
                        let op = ConvForward { conv: &plan.conv, x: &plan.x, w: &plan.w, y: &plan.y };
                        op.launch(plan.forward, workspace, one_zero, &av, &bv, &mut out)
                    }
                    Kind::Data => {
                        let op = ConvBackwardData { conv: &plan.conv, dx: &plan.x, w: &plan.w, dy: &plan.y };
                        op.launch(plan.data, workspace, one_zero, &mut out, &av, &bv)
                    }
                    Kind::Filter => {
                        let op = ConvBackwardFilter { conv: &plan.conv, x: &plan.x, dw: &plan.w, dy: &plan.y };
                        op.launch(plan.filter, workspace, one_zero, &av, &mut out, &bv)
                    }
                }
            }
            .map_err(candle_core::Error::wrap)
        })
    })?;
    Ok(CudaStorage::wrap_cuda_slice(out, device))
}

/// Descriptors and chosen algorithms of one convolution (shapes, dtype, math mode), and the
/// workspace each product needs.
struct Plan<T> {
    conv: ConvDescriptor<f32>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
    forward: cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t,
    data: cudarc::cudnn::sys::cudnnConvolutionBwdDataAlgo_t,
    filter: cudarc::cudnn::sys::cudnnConvolutionBwdFilterAlgo_t,
    /// Bytes of workspace of the forward, data and filter products.
    bytes: [usize; 3],
}

type PlanKey = (DeviceId, DType, Geometry, Shapes, bool);

/// Per thread, as cuDNN handles are neither Send nor Sync (and a worker trains on one thread):
/// the handle and workspace of each device, and the plans made.
struct State {
    handles: HashMap<DeviceId, (Arc<Cudnn>, Option<CudaSlice<u8>>)>,
    plans: HashMap<PlanKey, Box<dyn Any>>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { handles: HashMap::new(), plans: HashMap::new() });
}

fn cudnn_error(e: cudarc::cudnn::CudnnError) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

fn int4(d: [usize; 4]) -> [i32; 4] {
    d.map(|v| v as i32)
}

fn make_plan<T: CudnnDataType>(cudnn: &Arc<Cudnn>, g: Geometry, s: Shapes, tf32: bool) -> Result<Plan<T>> {
    let nchw = cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    let (p, st) = (g.padding as i32, g.stride as i32);
    // Accumulation in f32 for every input type, as PyTorch's cuDNN convolutions.
    let mut conv =
        cudnn.create_conv2d::<f32>([p, p], [st, st], [1, 1], cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION).map_err(cudnn_error)?;
    let math = if T::DATA_TYPE != f32::DATA_TYPE {
        cudnnMathType_t::CUDNN_TENSOR_OP_MATH
    } else if tf32 {
        cudnnMathType_t::CUDNN_DEFAULT_MATH
    } else {
        cudnnMathType_t::CUDNN_FMA_MATH
    };
    conv.set_math_type(math).map_err(cudnn_error)?;
    let x = cudnn.create_4d_tensor::<T>(nchw, int4(s.x)).map_err(cudnn_error)?;
    let w = cudnn.create_4d_filter::<T>(nchw, int4(s.w)).map_err(cudnn_error)?;
    let y = cudnn.create_4d_tensor::<T>(nchw, int4(s.y)).map_err(cudnn_error)?;
    let fwd = ConvForward { conv: &conv, x: &x, w: &w, y: &y };
    let forward = fwd.pick_algorithm().map_err(cudnn_error)?;
    let f_bytes = fwd.get_workspace_size(forward).map_err(cudnn_error)?;
    let bd = ConvBackwardData { conv: &conv, dx: &x, w: &w, dy: &y };
    let data = bd.pick_algorithm().map_err(cudnn_error)?;
    let d_bytes = bd.get_workspace_size(data).map_err(cudnn_error)?;
    let bf = ConvBackwardFilter { conv: &conv, x: &x, dw: &w, dy: &y };
    let filter = bf.pick_algorithm().map_err(cudnn_error)?;
    let w_bytes = bf.get_workspace_size(filter).map_err(cudnn_error)?;
    Ok(Plan { conv, x, w, y, forward, data, filter, bytes: [f_bytes, d_bytes, w_bytes] })
}

/// Runs `f` with the plan of this convolution (made at its first use) and a workspace of the
/// size the product needs (None when it needs none).
fn with_plan<T, R>(
    device: &CudaDevice,
    g: Geometry,
    shapes: Shapes,
    kind: Kind,
    tf32: bool,
    f: impl FnOnce(&Plan<T>, Option<&mut CudaSlice<u8>>) -> Result<R>,
) -> Result<R>
where
    T: CudnnDataType + WithDType + 'static,
{
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let State { handles, plans } = &mut *state;
        let id = device.id();
        let (cudnn, workspace) = match handles.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert((Cudnn::new(device.cuda_stream()).map_err(cudnn_error)?, None)),
        };
        let plan = match plans.entry((id, T::DTYPE, g, shapes, tf32)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Box::new(make_plan::<T>(cudnn, g, shapes, tf32)?)),
        };
        let plan = plan.downcast_ref::<Plan<T>>().expect("a plan of this dtype");
        let bytes = plan.bytes[kind as usize];
        if bytes == 0 {
            return f(plan, None);
        }
        if workspace.as_ref().is_none_or(|w| w.len() < bytes) {
            // The old one is freed in stream order, after the products that used it.
            // A workspace is scratch memory; cuDNN reads nothing it did not write.
            let fresh = uninit::<u8>(&device, bytes)?;
            *workspace = Some(fresh);
        }
        f(plan, workspace.as_mut())
    })
}
