//! Batch-norm in training mode, optionally followed by ReLU: one pass per channel forward (batch
//! statistics, normalize, scale, shift, clamp) and one backward.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::pool::Pool;
use crate::{output, slice, unpack, SharedMut};

/// What [`batch_norm_train`] gives back: the output and the batch's per-channel mean and biased
/// variance (for the running statistics; detached from the graph).
pub struct BatchNormOutput {
    pub y: Tensor,
    pub mean: Tensor,
    pub var: Tensor,
}

/// How the GPU's training batch-norm treats bf16 and f16 data (f32 data is normalized as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfData {
    /// cuDNN normalizes the data itself, statistics, scale and shift in f32 (`bn16`: cuDNN's
    /// "pseudo half" configurations, what PyTorch's autocast runs for f16).
    Direct,
    /// cuDNN normalizes an f32 copy, converted back: the arithmetic of casts around an f32
    /// batch-norm, without the f32 copies becoming tensors that the backward pass keeps.
    ViaF32,
    /// This crate's kernels (crates/kernels/src/gpu/cuda_bn.cu, `bn16k`) normalize the data itself,
    /// statistics and sums in f32 and f64: PyTorch's own batch-norm's arithmetic and traffic for
    /// bf16 data, a third of the bytes of [`HalfData::ViaF32`].
    Kernels,
}

/// What the GPU's training batch-norm does to its output inside the same op.
#[derive(Debug, Clone, Copy)]
pub enum After<'a> {
    Nothing,
    /// `relu(bn(x))`.
    Relu,
    /// `relu(bn(x) + residual)`, a ResNet block's end.
    AddRelu(&'a Tensor),
}

/// A batch-norm layer's running statistics (per-channel f32 tensors, updated in place by the GPU's
/// training batch-norm) and its momentum (PyTorch's: the weight of the batch).
pub struct RunningStats<'a> {
    pub mean: &'a Tensor,
    pub var: &'a Tensor,
    pub momentum: f64,
}

/// PyTorch's running statistics after a training step: `running * (1 - momentum) + batch *
/// momentum`, the variance unbiased over the `count` values of a channel that the batch's biased
/// `var` is over. candle's ops, each rounded on its own: the CPU's update, and what the GPU's
/// kernel (cuda_bn_running.cu) equals bit for bit (crates/kernels/tests/cuda_source_on_host.rs).
pub fn running_statistics(
    running_mean: &Tensor,
    running_var: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    momentum: f64,
    count: f64,
) -> Result<(Tensor, Tensor)> {
    let rm = ((running_mean * (1.0 - momentum))? + (mean * momentum)?)?;
    let rv = ((running_var * (1.0 - momentum))? + (var * (momentum * count / (count - 1.0)))?)?;
    Ok((rm, rv))
}

/// PyTorch's `batch_norm(x, training=True)` over (n, c, h, w) with per-channel `gamma` and `beta`,
/// then `relu` if asked: y = max(0, (x - mean) / sqrt(var + eps) * gamma + beta); then, if `pool`
/// gives (kernel, stride, padding), max-pooling of that (which needs `relu`). One op: the
/// full-size intermediate between batch-norm and pool is never kept, and the backward pass finds
/// the window maxima again from the input.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
    pool: Option<(usize, usize, usize)>,
) -> Result<BatchNormOutput> {
    let x = x.contiguous()?;
    let (n, c, h, w) = x.dims4()?;
    if pool.is_some() && !relu {
        candle_core::bail!("batch_norm_train: pooling is fused only after the ReLU");
    }
    let pool = match pool {
        Some((k, stride, padding)) => {
            let p = Pool { k, stride, padding, h, w };
            p.out()?;
            Some(p)
        }
        None => None,
    };
    // The statistics are read straight from the input first, so that the op's output is `y`
    // alone: a packed output would cost the backward pass extra full-size copies.
    let (mean, var): (Vec<f64>, Vec<f64>) = {
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else { candle_core::bail!("batch_norm_train: not a CPU tensor") };
        let xs = slice(cpu, layout)?;
        moments(xs, (n, c, h * w))
    };
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let op = BatchNorm { relu, pool, mean: mean.clone(), inv_std };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let as_tensor = |v: Vec<f64>| Tensor::from_vec(v.into_iter().map(|v| v as f32).collect::<Vec<_>>(), c, x.device());
    Ok(BatchNormOutput { y, mean: as_tensor(mean)?, var: as_tensor(var)? })
}

struct BatchNorm {
    relu: bool,
    pool: Option<Pool>,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// (images, channels, pixels per channel) of an (n, c, h, w) layout.
fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    Ok((n, c, h * w))
}

/// Lanes of the f32 partial sums: eight f32 lanes make one AVX register, so the compiler
/// vectorizes the loops below (a single running sum would be kept in order, one add at a time).
const LANES: usize = 8;

/// Two sums Σ f(i) over `0..len`, in f32 lanes, the lanes then added in f64: within a plane the
/// sums are short (a few hundred per lane), across planes and channels they are exact enough in
/// f64.
#[inline(always)]
pub(crate) fn lane_sum2(len: usize, f: impl Fn(usize) -> (f32, f32)) -> (f64, f64) {
    let (mut a, mut b) = ([0f32; LANES], [0f32; LANES]);
    let full = len / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for l in 0..LANES {
            let (u, v) = f(base + l);
            a[l] += u;
            b[l] += v;
        }
    }
    let (mut ta, mut tb) = (0f32, 0f32);
    for i in full..len {
        let (u, v) = f(i);
        ta += u;
        tb += v;
    }
    let total = |acc: [f32; LANES], t: f32| acc.iter().map(|&v| v as f64).sum::<f64>() + t as f64;
    (total(a, ta), total(b, tb))
}

/// Images per task of the passes that sum over the batch: each group's sums are made apart, then
/// added in group order, so the result does not depend on how rayon shares the work.
pub(crate) const GROUP: usize = 8;

/// Mean and biased variance of every channel of (n, c, hw) values, in one pass: sums of x - k
/// and (x - k)² with k the channel's first value, which keeps the shifted sums small (the
/// textbook one-pass formula without a shift loses the variance when the mean is large against
/// the spread). Image by image, as [`normalize`].
pub(crate) fn moments(x: &[f32], (n, c, hw): (usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let shift: Vec<f32> = (0..c).map(|ch| x[ch * hw]).collect();
    let partials: Vec<Vec<(f64, f64)>> = x
        .par_chunks(GROUP * c * hw)
        .map(|images| {
            let mut sums = vec![(0f64, 0f64); c];
            for (i, plane) in images.chunks_exact(hw).enumerate() {
                let k = shift[i % c];
                let (a, b) = lane_sum2(hw, |i| {
                    let d = plane[i] - k;
                    (d, d * d)
                });
                sums[i % c].0 += a;
                sums[i % c].1 += b;
            }
            sums
        })
        .collect();
    let m = (n * hw) as f64;
    (0..c)
        .map(|ch| {
            let (s1, s2) = partials.iter().fold((0f64, 0f64), |(a, b), p| (a + p[ch].0, b + p[ch].1));
            let shifted = s1 / m;
            (shift[ch] as f64 + shifted, (s2 / m - shifted * shifted).max(0.0))
        })
        .unzip()
}

/// The batch-norm's output from its statistics: `x * a + b` per channel, then the ReLU and the
/// pooling if asked; (n, c, ho, wo) flat.
#[allow(clippy::too_many_arguments)]
pub(crate) fn normalize(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
    mean: &[f64],
    inv_std: &[f64],
    relu: bool,
    pool: Option<&Pool>,
) -> Vec<f32> {
    let (ho, wo) = match pool {
        Some(p) => p.out().expect("checked when the op was made"),
        None => (1, hw),
    };
    let per = ho * wo;
    let coefficients: Vec<(f32, f32)> = (0..c)
        .map(|ch| {
            let scale = gamma[ch] as f64 * inv_std[ch];
            (scale as f32, (beta[ch] as f64 - mean[ch] * scale) as f32)
        })
        .collect();
    let mut y = vec![0f32; n * c * per];
    // Image by image (each image's channels are contiguous; channel by channel across images
    // would jump between far planes, which the hardware prefetcher cannot follow).
    y.par_chunks_mut(c * per).zip(x.par_chunks(c * hw)).for_each_init(
        || vec![0f32; if pool.is_some() { hw } else { 0 }],
        |z, (y, x)| {
            for ((y, x), &(a, b)) in y.chunks_exact_mut(per).zip(x.chunks_exact(hw)).zip(&coefficients) {
                if let Some(p) = pool.filter(|p| p.is_2x2()) {
                    // The window's maximum after the affine map and the ReLU, read directly.
                    let w = p.w;
                    for (i, y) in y.chunks_exact_mut(wo).enumerate() {
                        let (r0, r1) = (&x[2 * i * w..][..w], &x[(2 * i + 1) * w..][..w]);
                        for ((y, top), bottom) in y.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                            let f = |v: f32| (v * a + b).max(0.0);
                            *y = f(top[0]).max(f(top[1])).max(f(bottom[0]).max(f(bottom[1])));
                        }
                    }
                    continue;
                }
                let dst: &mut [f32] = if pool.is_some() { z } else { y };
                for (d, &v) in dst.iter_mut().zip(x) {
                    let v = v * a + b;
                    *d = if relu { v.max(0.0) } else { v };
                }
                if let Some(p) = pool {
                    for (o, y) in y.iter_mut().enumerate() {
                        *y = z[p.arg_max(z, o / wo, o % wo)];
                    }
                }
            }
        },
    );
    y
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "oodlab-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = dims(xl)?;
        let (x, gamma, beta) = (slice(xs, xl)?, slice(gs, gl)?, slice(bs, bl)?);
        let y = normalize(x, (n, c, hw), gamma, beta, &self.mean, &self.inv_std, self.relu, self.pool.as_ref());
        let shape = match &self.pool {
            Some(p) => Shape::from((n, c, p.out()?.0, p.out()?.1)),
            None => xl.shape().clone(),
        };
        output(y, shape)
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = BatchNormBackward {
            relu: self.relu,
            pool: self.pool,
            mean: self.mean.clone(),
            inv_std: self.inv_std.clone(),
            gamma: gamma.to_vec1::<f32>()?,
            beta: _beta.to_vec1::<f32>()?,
        };
        let packed = x.apply_op3_no_bwd(y, &grad.contiguous()?, &op)?;
        let c = gamma.dim(0)?;
        let mut parts = unpack(&packed, &[x.dims(), &[c], &[c]])?.into_iter();
        Ok((parts.next(), parts.next(), parts.next()))
    }
}

/// Gradients of the input, the scale and the shift, packed: [dx | dgamma | dbeta].
struct BatchNormBackward {
    relu: bool,
    pool: Option<Pool>,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "oodlab-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = dims(xl)?;
        let (x, y, grad) = (slice(xs, xl)?, slice(ys, yl)?, slice(gs, gl)?);
        let total = n * c * hw;
        let m = (n * hw) as f64;
        let mut packed = vec![0f32; total + 2 * c];
        let out = SharedMut(packed.as_mut_ptr());
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map_init(Vec::new, |gz: &mut Vec<f32>, ch| {
                let (mean, inv_std) = (self.mean[ch], self.inv_std[ch]);
                let mf = mean as f32;
                // With pooling, the gradient at the batch-norm's output: each window's gradient
                // at its arg-max, found again from the recomputed activations `z`; 0 where the
                // ReLU was closed. Then the code below reads it as if it were `grad` with y = 1.
                let pooled = self.pool.map(|p| {
                    let (_, wo) = p.out().expect("checked in the forward pass");
                    let per = grad.len() / (n * c);
                    let scale = self.gamma[ch] as f64 * inv_std;
                    let (a, b) = (scale as f32, (self.beta[ch] as f64 - mean * scale) as f32);
                    gz.clear();
                    gz.resize(n * hw, 0.0);
                    let mut z = vec![0f32; hw];
                    for img in 0..n {
                        let at = (img * c + ch) * hw;
                        for (z, &v) in z.iter_mut().zip(&x[at..at + hw]) {
                            *z = (v * a + b).max(0.0);
                        }
                        let gout = &grad[(img * c + ch) * per..][..per];
                        let gzi = &mut gz[img * hw..(img + 1) * hw];
                        for (o, &g) in gout.iter().enumerate() {
                            let pos = p.arg_max(&z, o / wo, o % wo);
                            if z[pos] > 0.0 {
                                gzi[pos] += g;
                            }
                        }
                    }
                });
                let ones = if pooled.is_some() { vec![1f32; hw] } else { Vec::new() };
                // The gradient reaching the normalization: through the ReLU where it was open.
                let relu = self.relu;
                let g = move |y: f32, g: f32| if relu && y <= 0.0 { 0.0 } else { g };
                let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
                // (y, grad) of image `img`'s plane; pooled: (ones, gz), the mask already applied.
                let planes = |img: usize| -> (&[f32], &[f32]) {
                    let at = (img * c + ch) * hw;
                    match pooled {
                        Some(()) => (&ones[..], &gz[img * hw..(img + 1) * hw]),
                        None => (&y[at..at + hw], &grad[at..at + hw]),
                    }
                };
                for img in 0..n {
                    let at = (img * c + ch) * hw;
                    let (x, (y, gr)) = (&x[at..at + hw], planes(img));
                    let (a, b) = lane_sum2(hw, |i| {
                        let gi = g(y[i], gr[i]);
                        (gi, gi * (x[i] - mf))
                    });
                    sum_g += a;
                    sum_gx += b;
                }
                let (dbeta, dgamma) = (sum_g, sum_gx * inv_std);
                // dx = k (m g - dbeta - xhat dgamma), xhat = (x - mean) inv_std, k = gamma inv_std / m,
                // written as a g + b (x - mean) + c for one fused pass.
                let k = self.gamma[ch] as f64 * inv_std / m;
                let (a, b, cst) = ((k * m) as f32, (-k * dgamma * inv_std) as f32, (-k * dbeta) as f32);
                for img in 0..n {
                    let at = (img * c + ch) * hw;
                    // SAFETY: channel `ch` of image `img` is written by this task only.
                    #[allow(unsafe_code)]
                    let dx = unsafe { out.part(at, hw) };
                    let (x, (y, gr)) = (&x[at..at + hw], planes(img));
                    for (((dx, &x), &y), &gr) in dx.iter_mut().zip(x).zip(y).zip(gr) {
                        *dx = a * g(y, gr) + b * (x - mf) + cst;
                    }
                }
                (dgamma, dbeta)
            })
            .collect();
        for (ch, (dgamma, dbeta)) in sums.into_iter().enumerate() {
            packed[total + ch] = dgamma as f32;
            packed[total + c + ch] = dbeta as f32;
        }
        output(packed, total + 2 * c)
    }
}
