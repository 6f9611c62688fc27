//! A device's convolution and training batch-norm checked against candle's own ops on the CPU on
//! fixed inputs. Convolution: forward, input gradient and kernel gradient, over strides, paddings,
//! odd and non-square sizes, 1x1 kernels, a batch of one, and an input that needs no gradient
//! (whose gradient must then not be computed at all). Batch-norm: output, batch mean and variance,
//! and the gradients of input, scale and shift. On CUDA tensors the ops checked are cuDNN's
//! (crates/kernels/src/gpu/cudnn.rs, cudnn_bn.rs), on the CPU this crate's kernels. The GPU's own
//! kernels (ReLU, max-pooling, SGD) are checked against the CPU's or candle's ops.
//! `oodlab check-kernels` prints the results; scripts/gpu-check.sh runs it on a GPU.

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::HalfData;

/// One convolution: input (n, c, h, w), kernel (o, c, k, k).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvCase {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    /// Whether the input is a variable (needs its gradient), as every layer's but the first.
    pub input_grad: bool,
}

impl std::fmt::Display for ConvCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (c, k) = (self.c, self.k);
        let text = format!(
            "x {}x{c}x{}x{} k {}x{c}x{k}x{k} stride {} pad {}{}",
            self.n,
            self.h,
            self.w,
            self.o,
            self.stride,
            self.padding,
            if self.input_grad { "" } else { " (no input gradient)" }
        );
        f.pad(&text) // honours a width, for the check's table
    }
}

/// The cases checked: ResNet's shapes in small (stem, 3x3, strided 3x3, 1x1 projection) and
/// the awkward ones. Every case has the same remainder `(size + 2 pad - k) % stride` along both
/// axes: candle's reference backward pass fails otherwise (crates/kernels/src/ops.rs, `Conv2d`).
pub fn conv_cases() -> Vec<ConvCase> {
    let case = |n, c, h, w, o, k, stride, padding, input_grad| ConvCase { n, c, h, w, o, k, stride, padding, input_grad };
    vec![
        case(2, 3, 32, 32, 8, 7, 2, 3, false), // a ResNet stem: images, no gradient wanted
        case(2, 3, 32, 32, 8, 7, 2, 3, true),
        case(4, 16, 14, 14, 16, 3, 1, 1, true), // a basic block's 3x3
        case(4, 16, 14, 14, 32, 3, 2, 1, true), // the strided 3x3 of a new stage
        case(4, 16, 14, 14, 32, 1, 2, 0, true), // the 1x1 projection of the shortcut
        case(3, 8, 9, 9, 5, 3, 2, 1, true),     // odd sizes, odd channel counts
        case(1, 5, 7, 11, 6, 3, 1, 1, true),    // a batch of one, not square
        case(2, 4, 6, 6, 3, 5, 1, 0, true),     // a kernel nearly the image's size, no padding
        case(2, 6, 8, 8, 4, 1, 1, 0, true),     // 1x1, stride 1
    ]
}

/// A number format to check in, with its tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub dtype: DType,
    /// Whether f32 convolutions may use TF32 tensor cores ([`crate::set_tf32`]).
    pub tf32: bool,
}

impl Mode {
    /// The ways batch-norm takes this mode's data: f32 as it is; bf16 and f16 via f32 (the
    /// default), directly by cuDNN (`bn16`) and by this crate's kernels (`bn16k`).
    pub fn half_modes(&self) -> Vec<HalfData> {
        if self.dtype == DType::F32 {
            vec![HalfData::Direct]
        } else {
            vec![HalfData::ViaF32, HalfData::Direct, HalfData::Kernels]
        }
    }

    /// A batch-norm case's label prefix: the op's name and a space for half-precision data not
    /// normalized via f32.
    pub fn norm_label(&self, half: HalfData) -> &'static str {
        match (self.dtype, half) {
            (DType::F32, _) | (_, HalfData::ViaF32) => "",
            (_, HalfData::Direct) => "bn16 ",
            (_, HalfData::Kernels) => "bn16k ",
        }
    }

    /// The formats of a device: f32 on the CPU; on a GPU f32 without and with TF32, bf16, f16.
    pub fn all(device: &Device) -> Vec<Mode> {
        let mode = |dtype, tf32| Mode { dtype, tf32 };
        if device.is_cpu() {
            return vec![mode(DType::F32, false)];
        }
        vec![mode(DType::F32, false), mode(DType::F32, true), mode(DType::BF16, false), mode(DType::F16, false)]
    }

    /// Largest difference allowed, relative to the reference's largest magnitude: f32 sums in
    /// another order (or by cuDNN's Winograd and FFT algorithms) stay within 1e-4; TF32 rounds each
    /// input to 10 bits of mantissa (2^-11 relative), bf16 to 7, and its outputs too.
    pub fn tolerance(&self) -> f32 {
        match (self.dtype, self.tf32) {
            (DType::F32, false) => 1e-4,
            (DType::F32, true) => 1e-2,
            _ => 3e-2,
        }
    }

    /// Batch-norm's limit: [`NORM_TOLERANCE`] in f32; bf16 and f16 round the output and the input
    /// gradient to the format, as [`Mode::tolerance`].
    pub fn norm_tolerance(&self) -> f32 {
        if self.dtype == DType::F32 {
            NORM_TOLERANCE
        } else {
            self.tolerance()
        }
    }

    /// Evaluation's one-kernel batch-norm rounds as candle's ops apart: equal in f32 but for a last
    /// bit; bf16 and f16 within a unit of the format (if the two f32 results before the last
    /// rounding differ by a bit across a rounding boundary).
    pub fn eval_tolerance(&self) -> f32 {
        if self.dtype == DType::F32 {
            1e-6
        } else {
            1e-2
        }
    }

    /// Max-pooling copies values, and in f32 sums each input's gradients in the CPU kernel's
    /// order: exact. bf16 and f16 round a sum of up to four gradients once (half an ulp, 2^-9 of a
    /// bf16 value).
    pub fn pool_tolerance(&self) -> f32 {
        if self.dtype == DType::F32 {
            0.0
        } else {
            1e-2
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.dtype.as_str(), if self.tf32 { "+tf32" } else { "" })
    }
}

/// Largest differences from the reference, relative to the reference's largest magnitude.
#[derive(Debug, Clone, Copy)]
pub struct ConvErrors {
    pub forward: f32,
    /// None when the input needed no gradient (and none was computed).
    pub input: Option<f32>,
    pub kernel: f32,
}

impl ConvErrors {
    pub fn worst(&self) -> f32 {
        self.forward.max(self.input.unwrap_or(0.0)).max(self.kernel)
    }
}

/// Deterministic values in [-1, 1): the same inputs on every machine.
fn values(len: usize, seed: f32) -> Vec<f32> {
    (0..len).map(|i| ((i as f32 * 0.618_034 + seed) * 12.9898).sin()).collect()
}

fn relative(got: &Tensor, want: &Tensor) -> Result<f32> {
    let got = got.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let want = want.flatten_all()?.to_vec1::<f32>()?;
    if got.len() != want.len() {
        candle_core::bail!("{} values where {} were expected", got.len(), want.len());
    }
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    Ok(got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale)
}

/// Runs `case` on `device` in `mode` with this crate's op for the device, and candle's CPU
/// convolution in f32 on the same values (rounded to the mode's dtype first), and returns the
/// differences. Fails if the op computed an input gradient that was not needed. Sets
/// [`crate::set_tf32`] to the mode's and back to the default after.
pub fn check_conv(case: ConvCase, device: &Device, mode: Mode) -> Result<ConvErrors> {
    crate::set_tf32(mode.tf32);
    let errors = check_conv_in(case, device, mode.dtype);
    crate::set_tf32(true);
    errors
}

fn check_conv_in(case: ConvCase, device: &Device, dtype: DType) -> Result<ConvErrors> {
    let ConvCase { n, c, h, w, o, k, stride, padding, input_grad } = case;
    let cpu = Device::Cpu;
    let round = |t: Tensor| t.to_dtype(dtype)?.to_dtype(DType::F32);
    let x0 = round(Tensor::from_vec(values(n * c * h * w, 0.1), (n, c, h, w), &cpu)?)?;
    let w0 = round((Tensor::from_vec(values(o * c * k * k, 0.2), (o, c, k, k), &cpu)? * 0.3)?)?;
    let ho = (h + 2 * padding - k) / stride + 1;
    let wo = (w + 2 * padding - k) / stride + 1;
    let gy0 = round(Tensor::from_vec(values(n * o * ho * wo, 0.3), (n, o, ho, wo), &cpu)?)?;

    // The reference: candle's own convolution and its backward pass, f32 on the CPU.
    let (xr, wr) = (Var::from_tensor(&x0)?, Var::from_tensor(&w0)?);
    let yr = xr.as_tensor().conv2d(wr.as_tensor(), padding, stride, 1, 1)?;
    let gr = (&yr * &gy0)?.sum_all()?.backward()?;
    let (dxr, dwr) = (gr.get(xr.as_tensor()).expect("x's gradient"), gr.get(wr.as_tensor()).expect("w's gradient"));

    // The op checked, on the device, in the dtype.
    let on = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
    let wv = Var::from_tensor(&on(&w0)?)?;
    let xv = Var::from_tensor(&on(&x0)?)?;
    let x = if input_grad { xv.as_tensor().clone() } else { on(&x0)? };
    let y = conv_on_device(&x, wv.as_tensor(), stride, padding)?;
    let gy = on(&gy0)?;
    let g = (y.to_dtype(DType::F32)? * gy.to_dtype(DType::F32)?)?.sum_all()?.backward()?;
    let input = match (input_grad, g.get(&x)) {
        (true, Some(dx)) => Some(relative(dx, dxr)?),
        (true, None) => candle_core::bail!("{case}: no input gradient"),
        (false, None) => None,
        (false, Some(_)) => candle_core::bail!("{case}: an input gradient was computed for an input that needs none"),
    };
    let kernel = relative(g.get(wv.as_tensor()).ok_or_else(|| candle_core::Error::Msg(format!("{case}: no kernel gradient")))?, dwr)?;
    Ok(ConvErrors { forward: relative(&y, &yr)?, input, kernel })
}

/// One batch-norm input (n, c, h, w).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormCase {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl std::fmt::Display for NormCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format!("batch-norm x {}x{}x{}x{}", self.n, self.c, self.h, self.w))
    }
}

/// A ResNet stage's shape, odd sizes, a batch of one, one value per channel and image, and enough
/// values per channel (11,070) that the GPU's own half-precision kernels split a channel's sums
/// over several blocks (3; crates/kernels/src/gpu/cuda_bn.rs).
pub fn norm_cases() -> Vec<NormCase> {
    let case = |n, c, h, w| NormCase { n, c, h, w };
    vec![case(4, 16, 14, 14), case(3, 5, 9, 7), case(1, 8, 6, 6), case(16, 32, 1, 1), case(6, 3, 45, 41)]
}

/// Largest differences of each result from the reference, relative to its largest magnitude.
#[derive(Debug, Clone, Copy)]
pub struct NormErrors {
    pub forward: f32,
    pub mean: f32,
    pub var: f32,
    pub input: f32,
    pub scale: f32,
    pub shift: f32,
    /// The running mean and variance after one step (PyTorch's momentum 0.1, the variance
    /// unbiased), the worse of the two.
    pub running: f32,
}

impl NormErrors {
    pub fn worst(&self) -> f32 {
        [self.forward, self.mean, self.var, self.input, self.scale, self.shift, self.running].into_iter().fold(0f32, f32::max)
    }
}

/// The tolerance of an f32 batch-norm check (bf16 and f16 data: [`Mode::tolerance`], as their
/// outputs and input gradients are rounded to the format).
pub const NORM_TOLERANCE: f32 = 1e-4;

const EPS: f64 = 1e-5;

/// Runs `case` on `device` with this crate's training batch-norm for the device on data in `dtype`
/// (scale, shift and statistics in f32), and candle's ops on the CPU in f64 on the same values
/// (PyTorch's formula: batch mean, biased variance, eps 1e-5).
pub fn check_batch_norm(case: NormCase, device: &Device, dtype: DType, half: HalfData) -> Result<NormErrors> {
    let NormCase { n, c, h, w } = case;
    let cpu = Device::Cpu;
    // The values `dtype` holds, so that the reference computes on what the op is given.
    let exact = |t: Tensor| t.to_dtype(dtype)?.to_dtype(DType::F32);
    // An offset per channel, so that the mean matters.
    let x0 = exact(
        (Tensor::from_vec(values(n * c * h * w, 0.4), (n, c, h, w), &cpu)?
            + Tensor::from_vec((0..c).map(|i| i as f32 * 0.5 - 1.0).collect::<Vec<_>>(), (1, c, 1, 1), &cpu)?
                .broadcast_as((n, c, h, w))?)?,
    )?;
    let g0 = (Tensor::from_vec(values(c, 0.5), c, &cpu)? + 1.0)?;
    let b0 = Tensor::from_vec(values(c, 0.6), c, &cpu)?;
    let gy0 = exact(Tensor::from_vec(values(n * c * h * w, 0.7), (n, c, h, w), &cpu)?)?;

    // The reference in f64, so that its own rounding (sums of 10,000 values) stays out of the
    // differences; compared in f32.
    let wide = |t: &Tensor| t.to_dtype(DType::F64);
    let (xr, gr, br) = (Var::from_tensor(&wide(&x0)?)?, Var::from_tensor(&wide(&g0)?)?, Var::from_tensor(&wide(&b0)?)?);
    let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1));
    let mean_r = xr.as_tensor().mean_keepdim((0, 2, 3))?;
    let centred = xr.as_tensor().broadcast_sub(&mean_r)?;
    let var_r = centred.sqr()?.mean_keepdim((0, 2, 3))?;
    let yr = centred
        .broadcast_div(&(&var_r + EPS)?.sqrt()?)?
        .broadcast_mul(&per_channel(gr.as_tensor())?)?
        .broadcast_add(&per_channel(br.as_tensor())?)?;
    let grads_r = (&yr * wide(&gy0)?)?.sum_all()?.backward()?;
    let grad = |g: &candle_core::backprop::GradStore, t: &Tensor, what: &str| {
        g.get(t).ok_or_else(|| candle_core::Error::Msg(format!("{case}: no gradient of the {what}")))?.to_dtype(DType::F32)
    };
    let narrow = |t: &Tensor| t.flatten_all()?.to_dtype(DType::F32);
    let (yr, mean_r, var_r) = (yr.to_dtype(DType::F32)?, narrow(&mean_r)?, narrow(&var_r)?);

    let (xv, gv, bv) = (
        Var::from_tensor(&x0.to_device(device)?.to_dtype(dtype)?)?,
        Var::from_tensor(&g0.to_device(device)?)?,
        Var::from_tensor(&b0.to_device(device)?)?,
    );
    let out = batch_norm_on_device(xv.as_tensor(), gv.as_tensor(), bv.as_tensor(), half)?;
    if out.y.dtype() != dtype {
        candle_core::bail!("{case}: output in {:?} for {dtype:?} data", out.y.dtype());
    }
    let grads = (out.y.to_dtype(DType::F32)? * gy0.to_device(device)?)?.sum_all()?.backward()?;
    // The running statistics after a step from non-trivial ones, as a training step updates them
    // on the device (on a GPU one kernel in place; on the CPU candle's ops).
    let (rm0, rv0) = (Tensor::from_vec(values(c, 0.8), c, &cpu)?, (Tensor::from_vec(values(c, 0.9), c, &cpu)?.abs()? + 0.5)?);
    let count = (n * h * w) as f64;
    let (rm_r, rv_r) = crate::running_statistics(&rm0, &rv0, &mean_r, &var_r, MOMENTUM, count)?;
    let (rm, rv) =
        running_on_device(xv.as_tensor(), gv.as_tensor(), bv.as_tensor(), half, (&rm0.to_device(device)?, &rv0.to_device(device)?))?;
    Ok(NormErrors {
        running: relative(&rm, &rm_r)?.max(relative(&rv, &rv_r)?),
        forward: relative(&out.y, &yr)?,
        mean: relative(&out.mean, &mean_r)?,
        var: relative(&out.var, &var_r)?,
        input: relative(&grad(&grads, xv.as_tensor(), "input")?, &grad(&grads_r, xr.as_tensor(), "input")?)?,
        scale: relative(&grad(&grads, gv.as_tensor(), "scale")?, &grad(&grads_r, gr.as_tensor(), "scale")?)?,
        shift: relative(&grad(&grads, bv.as_tensor(), "shift")?, &grad(&grads_r, br.as_tensor(), "shift")?)?,
    })
}

/// The GPU's fused training batch-norm and ReLU (`residual`: with a residual added before the
/// ReLU, a ResNet block's end) on `case` in `dtype`, against the same ops apart on the same device,
/// as the models ran them before (batch-norm, candle's addition, the GPU's ReLU): output, the
/// gradients of the input, scale, shift and residual, the running statistics. The fused op runs
/// the same kernels in the same order, so the two agree bit for bit where cuDNN's batch-norm
/// repeats exactly: the largest difference relative to the separate ops' largest magnitude.
pub fn check_fused_batch_norm(case: NormCase, device: &Device, dtype: DType, half: HalfData, residual: bool) -> Result<f32> {
    let NormCase { n, c, h, w } = case;
    let cpu = Device::Cpu;
    let on = |t: Tensor| -> Result<Tensor> { t.to_dtype(dtype)?.to_device(device) };
    let x0 = on((Tensor::from_vec(values(n * c * h * w, 0.4), (n, c, h, w), &cpu)? * 2.0)?)?;
    let r0 = on(Tensor::from_vec(values(n * c * h * w, 0.45), (n, c, h, w), &cpu)?)?;
    let gy = Tensor::from_vec(values(n * c * h * w, 0.7), (n, c, h, w), &cpu)?.to_device(device)?;
    let g0 = (Tensor::from_vec(values(c, 0.5), c, &cpu)? + 1.0)?.to_device(device)?;
    let b0 = Tensor::from_vec(values(c, 0.6), c, &cpu)?.to_device(device)?;
    let rm0 = Tensor::from_vec(values(c, 0.8), c, &cpu)?.to_device(device)?;
    let rv0 = (Tensor::from_vec(values(c, 0.9), c, &cpu)?.abs()? + 0.5)?.to_device(device)?;
    // Each path from its own variables and running statistics: (output, gradients, statistics).
    let run = |fused: bool| -> Result<Vec<Tensor>> {
        let (x, g, b, r) = (Var::from_tensor(&x0)?, Var::from_tensor(&g0)?, Var::from_tensor(&b0)?, Var::from_tensor(&r0)?);
        let (rm, rv) = (rm0.copy()?, rv0.copy()?);
        let running = crate::RunningStats { mean: &rm, var: &rv, momentum: MOMENTUM };
        let residual = residual.then_some(r.as_tensor());
        let train = |after| -> Result<Tensor> {
            crate::gpu::on_gpu!(crate::ops::cudnn_bn::batch_norm_train_running(
                x.as_tensor(),
                g.as_tensor(),
                b.as_tensor(),
                EPS,
                half,
                running,
                after
            ))
        };
        let y: Tensor = match (fused, residual) {
            (true, Some(r)) => train(crate::After::AddRelu(r))?,
            (true, None) => train(crate::After::Relu)?,
            (false, Some(r)) => crate::gpu::on_gpu!(crate::ops::cuda_relu::relu(&(train(crate::After::Nothing)? + r)?))?,
            (false, None) => crate::gpu::on_gpu!(crate::ops::cuda_relu::relu(&train(crate::After::Nothing)?))?,
        };
        let grads = (y.to_dtype(DType::F32)? * &gy)?.sum_all()?.backward()?;
        let mut out = vec![y];
        for v in [&x, &g, &b].into_iter().chain(residual.is_some().then_some(&r)) {
            out.push(grads.get(v.as_tensor()).cloned().ok_or_else(|| candle_core::Error::Msg(format!("{case}: a gradient is missing")))?);
        }
        out.extend([rm, rv]);
        Ok(out)
    };
    let (fused, apart) = (run(true)?, run(false)?);
    let mut worst = 0f32;
    for (a, b) in fused.iter().zip(&apart) {
        worst = worst.max(relative(a, &b.to_device(&cpu)?.to_dtype(DType::F32)?)?);
    }
    Ok(worst)
}

/// What follows a batch-norm in evaluation (the kernels' `After`, without the residual itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalAfter {
    Nothing,
    Relu,
    AddRelu,
}

impl EvalAfter {
    pub const ALL: [EvalAfter; 3] = [EvalAfter::Nothing, EvalAfter::Relu, EvalAfter::AddRelu];

    /// The case's label: `eval batch-norm`, `eval batch-norm+ReLU`, `eval batch-norm+add+ReLU`.
    pub fn label(self) -> &'static str {
        match self {
            EvalAfter::Nothing => "eval batch-norm",
            EvalAfter::Relu => "eval batch-norm+ReLU",
            EvalAfter::AddRelu => "eval batch-norm+add+ReLU",
        }
    }
}

/// The GPU's one-kernel batch-norm in evaluation (crates/kernels/src/gpu/cuda_bn.cu) on `case` in
/// `dtype` against what the model layers compute with candle's ops on the same device (the data
/// cast to f32, times the scale, plus the shift, the ReLU, cast back; a block's end adds the
/// residual in the data's format, then the ReLU): the largest difference relative to the ops'
/// largest magnitude. The kernel rounds as those ops do, so 0 where they round as specified.
pub fn check_eval_batch_norm(case: NormCase, device: &Device, dtype: DType, after: EvalAfter) -> Result<f32> {
    let NormCase { n, c, h, w } = case;
    let cpu = Device::Cpu;
    let on = |t: Tensor| -> Result<Tensor> { t.to_dtype(dtype)?.to_device(device) };
    let x = on((Tensor::from_vec(values(n * c * h * w, 0.4), (n, c, h, w), &cpu)? * 3.0)?)?;
    let r = on(Tensor::from_vec(values(n * c * h * w, 0.45), (n, c, h, w), &cpu)?)?;
    let scale = (Tensor::from_vec(values(c, 0.5), c, &cpu)? * 1.7)?.to_device(device)?;
    let shift = Tensor::from_vec(values(c, 0.6), c, &cpu)?.to_device(device)?;
    let bn = x.to_dtype(DType::F32)?.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?.broadcast_add(&shift.reshape((1, c, 1, 1))?)?;
    let (want, kernel_after) = match after {
        EvalAfter::Nothing => (bn.to_dtype(dtype)?, crate::After::Nothing),
        EvalAfter::Relu => (bn.relu()?.to_dtype(dtype)?, crate::After::Relu),
        EvalAfter::AddRelu => ((bn.to_dtype(dtype)? + &r)?.relu()?, crate::After::AddRelu(&r)),
    };
    let got: Tensor = crate::gpu::on_gpu!(crate::ops::cuda_bn::batch_norm_eval(&x, &scale, &shift, kernel_after))?;
    if got.dtype() != dtype {
        candle_core::bail!("{case}: output in {:?} for {dtype:?} data", got.dtype());
    }
    relative(&got, &want.to_device(&cpu)?.to_dtype(DType::F32)?)
}

/// PyTorch's default batch-norm momentum, which the models use.
const MOMENTUM: f64 = 0.1;

/// The running statistics `rm` and `rv` after one training step over `x` on its device.
fn running_on_device(x: &Tensor, gamma: &Tensor, beta: &Tensor, half: HalfData, (rm, rv): (&Tensor, &Tensor)) -> Result<(Tensor, Tensor)> {
    let (n, _, h, w) = x.dims4()?;
    if x.device().is_cpu() {
        let out = batch_norm_on_device(x, gamma, beta, half)?;
        return crate::running_statistics(rm, rv, &out.mean, &out.var, MOMENTUM, (n * h * w) as f64);
    }
    let (rm, rv) = (rm.copy()?, rv.copy()?);
    let running = crate::RunningStats { mean: &rm, var: &rv, momentum: MOMENTUM };
    crate::gpu::on_gpu!(crate::ops::cudnn_bn::batch_norm_train_running(x, gamma, beta, EPS, half, running, crate::After::Nothing))?;
    Ok((rm, rv))
}

fn batch_norm_on_device(x: &Tensor, gamma: &Tensor, beta: &Tensor, half: HalfData) -> Result<crate::BatchNormOutput> {
    if x.device().is_cpu() {
        // The CPU kernel is f32: bf16 or f16 data is normalized in f32 and its output rounded back,
        // the least a half-precision op does (for the check's own test).
        let out = crate::batch_norm_train(&x.to_dtype(DType::F32)?, gamma, beta, EPS, false, None)?;
        return Ok(crate::BatchNormOutput { y: out.y.to_dtype(x.dtype())?, ..out });
    }
    crate::gpu::on_gpu!(crate::ops::cudnn_bn::batch_norm_train(x, gamma, beta, EPS, half))
}

/// The GPU's ReLU (crates/kernels/src/gpu/cuda_relu.rs) in `dtype` against PyTorch's rule computed
/// with candle's ops on the CPU: `max(x, 0)`, and the gradient passing where `x > 0` (candle's own
/// backward passes it at 0 too). The inputs hold exact zeros. The largest difference of output
/// and gradient, relative to their largest magnitude: the op copies or zeroes values, so 0.
pub fn check_relu(device: &Device, dtype: DType) -> Result<f32> {
    let n = 4096;
    // A quarter of the values exactly 0, the rest of either sign.
    let x: Vec<f32> = values(n, 1.1).iter().enumerate().map(|(i, v)| if i % 4 == 0 { 0.0 } else { *v }).collect();
    let x0 = Tensor::from_vec(x, (4, 16, 8, 8), &Device::Cpu)?.to_dtype(dtype)?.to_dtype(DType::F32)?;
    let gy0 = Tensor::from_vec(values(n, 1.2), (4, 16, 8, 8), &Device::Cpu)?.to_dtype(dtype)?.to_dtype(DType::F32)?;
    let y_ref = x0.relu()?;
    let gx_ref = (x0.gt(0f64)?.to_dtype(DType::F32)? * &gy0)?;
    let (y, gx) = relu_on_device(&x0.to_device(device)?.to_dtype(dtype)?, &gy0.to_device(device)?.to_dtype(dtype)?)?;
    Ok(relative(&y, &y_ref)?.max(relative(&gx, &gx_ref)?))
}

fn relu_on_device(x: &Tensor, gy: &Tensor) -> Result<(Tensor, Tensor)> {
    let v = Var::from_tensor(x)?;
    let y: Tensor = crate::gpu::on_gpu!(crate::ops::cuda_relu::relu(v.as_tensor()))?;
    let grads = (y.to_dtype(DType::F32)? * gy.to_dtype(DType::F32)?)?.sum_all()?.backward()?;
    let gx = grads.get(v.as_tensor()).cloned().ok_or_else(|| candle_core::Error::Msg("relu: no input gradient".into()))?;
    Ok((y, gx))
}

/// One max-pooling: input (n, c, h, w), k x k windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCase {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
}

impl std::fmt::Display for PoolCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let PoolCase { n, c, h, w, k, stride, padding } = *self;
        f.pad(&format!("max-pool {n}x{c}x{h}x{w} k {k} stride {stride} pad {padding}, ties"))
    }
}

/// ResNet's stem pooling (3x3, stride 2, padding 1: windows overlap, so an input can be the
/// maximum of several), the CNN's 2x2, odd and non-square sizes, a batch of one, stride 1.
pub fn pool_cases() -> Vec<PoolCase> {
    let case = |n, c, h, w, k, stride, padding| PoolCase { n, c, h, w, k, stride, padding };
    vec![
        case(2, 4, 16, 16, 3, 2, 1),
        case(2, 3, 8, 8, 2, 2, 0),
        case(3, 2, 9, 7, 3, 2, 1),
        case(1, 5, 7, 6, 2, 2, 0),
        case(2, 2, 6, 6, 3, 1, 1),
    ]
}

/// The GPU's max-pooling (crates/kernels/src/gpu/cuda_pool.rs) in `dtype` against the CPU kernel
/// (crates/kernels/src/pool.rs, itself checked against PyTorch) on the same values: output and
/// input gradient, relative to their largest magnitude. The inputs are multiples of 1/2, exact in
/// every format, so that windows hold ties (the first maximum must win); the first plane's are
/// shifted down by 1, so that windows of negative values border the padding (it must never win).
/// f32 sums each input's gradients in the CPU kernel's order: equal bit for bit; bf16 and f16
/// round the sum once.
pub fn check_max_pool(case: PoolCase, device: &Device, dtype: DType) -> Result<f32> {
    let PoolCase { n, c, h, w, k, stride, padding } = case;
    let len = n * c * h * w;
    let x: Vec<f32> =
        values(len, 1.3).iter().enumerate().map(|(i, v)| (v * 2.0).round() / 2.0 - if i < h * w { 1.0 } else { 0.0 }).collect();
    let x0 = Tensor::from_vec(x, (n, c, h, w), &Device::Cpu)?;
    let xr = Var::from_tensor(&x0)?;
    let yr = crate::max_pool2d(xr.as_tensor(), k, stride, padding)?;
    let gy0 = Tensor::from_vec(values(yr.elem_count(), 1.4), yr.shape(), &Device::Cpu)?.to_dtype(dtype)?.to_dtype(DType::F32)?;
    let grad = |g: &candle_core::backprop::GradStore, t: &Tensor| {
        g.get(t).cloned().ok_or_else(|| candle_core::Error::Msg(format!("{case}: no gradient of the input")))
    };
    let gr = (&yr * &gy0)?.sum_all()?.backward()?;
    let gxr = grad(&gr, xr.as_tensor())?;

    let xv = Var::from_tensor(&x0.to_device(device)?.to_dtype(dtype)?)?;
    let y: Tensor = crate::gpu::on_gpu!(crate::ops::cuda_pool::max_pool2d(xv.as_tensor(), k, stride, padding))?;
    let g = (y.to_dtype(DType::F32)? * gy0.to_device(device)?)?.sum_all()?.backward()?;
    let gx = grad(&g, xv.as_tensor())?;
    Ok(relative(&y, &yr)?.max(relative(&gx, &gxr)?))
}

/// The GPU's fused SGD update (crates/kernels/src/gpu/cuda_sgd.rs) against the same update with
/// candle's ops on the same device, over three steps with momentum, Nesterov and weight decay
/// (the first step sets the buffer): the largest difference of weights and buffers, relative to
/// their largest magnitude. Each rounds every product and sum on its own, so the two should
/// agree to the last bit or nearly. CUDA only: the CPU keeps candle's ops.
pub fn check_sgd(device: &Device) -> Result<f32> {
    let n = 1000;
    let p0 = Tensor::from_vec(values(n, 0.8), n, &Device::Cpu)?.to_device(device)?;
    let step = crate::SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 5e-4, nesterov: true };
    // candle's ops, as crates/train/src/optim.rs.
    let (mut p, mut buf): (Tensor, Option<Tensor>) = (p0.clone(), None);
    let grads: Vec<Tensor> =
        (0..3).map(|i| Tensor::from_vec(values(n, 0.9 + i as f32), n, &Device::Cpu)?.to_device(device)).collect::<Result<_>>()?;
    for grad in &grads {
        let g = (grad + (&p * step.weight_decay as f64)?)?;
        let b = match buf.take() {
            None => g.clone(),
            Some(b) => ((b * step.momentum as f64)? + &g)?,
        };
        let g = (g + (&b * step.momentum as f64)?)?;
        p = (&p - (g * step.lr as f64)?)?;
        buf = Some(b);
    }
    let (fused, fused_buf) = fused_sgd(&p0, &grads, step)?;
    Ok(relative(&fused, &p.to_device(&Device::Cpu)?)?.max(relative(&fused_buf, &buf.expect("three steps").to_device(&Device::Cpu)?)?))
}

fn fused_sgd(p0: &Tensor, grads: &[Tensor], step: crate::SgdStep) -> Result<(Tensor, Tensor)> {
    let p = p0.copy()?;
    let buf = p.zeros_like()?;
    for (i, grad) in grads.iter().enumerate() {
        crate::ops::sgd_step(&p, grad, &buf, i == 0, step)?;
    }
    Ok((p, buf))
}

/// This crate's convolution for `x`'s device: the CPU kernel, or cuDNN's on CUDA.
fn conv_on_device(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if x.device().is_cpu() {
        if x.dtype() != DType::F32 {
            candle_core::bail!("the CPU kernels are f32 only");
        }
        return crate::conv::conv2d(x, w, None, stride, padding);
    }
    crate::gpu::on_gpu!(crate::ops::cudnn::conv2d(x, w, stride, padding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_kernel_matches_candle_on_every_case() {
        for case in conv_cases() {
            let e = check_conv(case, &Device::Cpu, Mode::all(&Device::Cpu)[0]).unwrap();
            // Both sum the same products in f32 in different orders.
            assert!(e.worst() < 1e-5, "{case}: {e:?}");
            assert_eq!(e.input.is_some(), case.input_grad, "{case}");
        }
    }

    #[test]
    fn the_cpu_batch_norm_matches_candle_on_every_case() {
        for case in norm_cases() {
            let e = check_batch_norm(case, &Device::Cpu, DType::F32, HalfData::Direct).unwrap();
            assert!(e.worst() < NORM_TOLERANCE, "{case}: {e:?}");
        }
    }

    #[test]
    fn the_batch_norm_check_measures_half_precision_data() {
        // bf16 and f16 data through the same check a GPU's `bn16` op gets: the rounding of the
        // output shows (so the check compares what the format holds) and stays within the limit.
        for (dtype, mode) in
            [(DType::BF16, Mode { dtype: DType::BF16, tf32: false }), (DType::F16, Mode { dtype: DType::F16, tf32: false })]
        {
            for case in norm_cases() {
                let e = check_batch_norm(case, &Device::Cpu, dtype, HalfData::ViaF32).unwrap();
                assert!(e.forward > 0.0 && e.worst() < mode.norm_tolerance(), "{case} {dtype:?}: {e:?}");
            }
        }
    }

    #[test]
    fn a_wrong_convolution_is_caught() {
        // The reference against itself with a shifted padding must not pass: the check can fail.
        let case = conv_cases()[2];
        let x = Tensor::from_vec(values(4 * 16 * 14 * 14, 0.1), (4, 16, 14, 14), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(values(16 * 16 * 9, 0.2), (16, 16, 3, 3), &Device::Cpu).unwrap();
        let good = crate::conv::conv2d(&x, &w, None, case.stride, case.padding).unwrap();
        let shifted = x.conv2d(&w, case.padding, case.stride, 1, 1).unwrap().roll(1, 3).unwrap();
        assert!(relative(&shifted, &good).unwrap() > 0.1);
        assert!(relative(&good, &x.conv2d(&w, case.padding, case.stride, 1, 1).unwrap()).unwrap() < 1e-5);
    }
}
