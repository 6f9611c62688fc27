//! A convolution followed by batch-norm in training mode (then ReLU and max-pooling if asked), as
//! one op. The convolution's full-size output stays inside the op, kept for the backward pass; it
//! never becomes a tensor of candle's graph, so its gradient is never made either: the backward
//! pass computes each group of images' gradient at the convolution's output straight into the
//! matrix that the convolution's products read.
//!
//! Why: in the reference network the convolutions' outputs are the largest tensors of the step
//! (4x their pooled size), and every full-size tensor of the graph costs the backward pass a
//! zeroed gradient, an addition into it and the batch-norm's full-size gradient written and read
//! again (docs/performance.md).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::conv::{self, Geometry};
use crate::norm::{lane_sum2, moments, normalize, BatchNormOutput, GROUP};
use crate::pool::Pool;
use crate::{output, slice, unpack};

/// `batch_norm_train(conv2d(x, w, bias, stride, padding), gamma, beta, eps, relu, pool)` as one
/// op: the same values, with the convolution's output kept inside the op.
#[allow(clippy::too_many_arguments)]
pub fn conv_bn_train(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    gamma: &Tensor,
    beta: &Tensor,
    (stride, padding): (usize, usize),
    eps: f64,
    relu: bool,
    pool: Option<(usize, usize, usize)>,
) -> Result<BatchNormOutput> {
    if pool.is_some() && !relu {
        candle_core::bail!("conv_bn_train: pooling is fused only after the ReLU");
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let g = Geometry::new(x.layout(), w.layout(), stride, padding)?;
    let pool = match pool {
        Some((k, stride, padding)) => {
            let p = Pool { k, stride, padding, h: g.ho, w: g.wo };
            p.out()?;
            Some(p)
        }
        None => None,
    };
    let bias = match bias {
        Some(b) => b.clone(),
        None => Tensor::zeros(g.o, w.dtype(), w.device())?,
    };
    // One parameter tensor (3, o) for the op's third input: a custom op takes three.
    let params = Tensor::stack(&[&bias, gamma, beta], 0)?;
    let saved = Arc::new(Mutex::new(None));
    let op = ConvBn { stride, padding, eps, relu, pool, saved: saved.clone() };
    let y = x.apply_op3(&w, &params, op)?;
    let saved: Arc<Saved> = saved.lock().expect("not poisoned").clone().expect("set by the forward pass");
    let as_tensor = |v: &[f64]| Tensor::from_vec(v.iter().map(|&v| v as f32).collect::<Vec<_>>(), g.o, x.device());
    Ok(BatchNormOutput { y, mean: as_tensor(&saved.mean)?, var: as_tensor(&saved.var)? })
}

/// What the forward pass keeps for the backward pass.
struct Saved {
    /// The convolution's output, (n, o, ho, wo) flat.
    u: Vec<f32>,
    mean: Vec<f64>,
    /// Biased variance (for the running statistics).
    var: Vec<f64>,
    inv_std: Vec<f64>,
}

struct ConvBn {
    stride: usize,
    padding: usize,
    eps: f64,
    relu: bool,
    pool: Option<Pool>,
    /// Set by `cpu_fwd` (which takes `&self`), read by `bwd`.
    saved: Arc<Mutex<Option<Arc<Saved>>>>,
}

impl CustomOp3 for ConvBn {
    fn name(&self) -> &'static str {
        "oodlab-conv-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl, wl, self.stride, self.padding)?;
        let params = slice(ps, pl)?;
        let (bias, gamma, beta) = (&params[..g.o], &params[g.o..2 * g.o], &params[2 * g.o..]);
        let u = conv::forward(&g, slice(xs, xl)?, slice(ws, wl)?, bias);
        let hw = g.cols();
        let (mean, var) = moments(&u, (g.n, g.o, hw));
        let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let y = normalize(&u, (g.n, g.o, hw), gamma, beta, &mean, &inv_std, self.relu, self.pool.as_ref());
        let shape = match &self.pool {
            Some(p) => Shape::from((g.n, g.o, p.out()?.0, p.out()?.1)),
            None => Shape::from((g.n, g.o, g.ho, g.wo)),
        };
        *self.saved.lock().expect("not poisoned") = Some(Arc::new(Saved { u, mean, var, inv_std }));
        output(y, shape)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.lock().expect("not poisoned").clone() else {
            candle_core::bail!("conv_bn_train: backward pass without a forward pass");
        };
        let p = params.to_vec2::<f32>()?;
        // The input's gradient is skipped when nothing needs it (the images of a first layer).
        let need_dx = x.track_op();
        let op = ConvBnBackward {
            stride: self.stride,
            padding: self.padding,
            relu: self.relu,
            pool: self.pool,
            need_dx,
            saved,
            gamma: p[1].clone(),
            beta: p[2].clone(),
        };
        let packed = x.apply_op3_no_bwd(w, &gy.contiguous()?, &op)?;
        let o = params.dim(1)?;
        if need_dx {
            let mut parts = unpack(&packed, &[x.dims(), w.dims(), &[3, o]])?.into_iter();
            Ok((parts.next(), parts.next(), parts.next()))
        } else {
            let mut parts = unpack(&packed, &[w.dims(), &[3, o]])?.into_iter();
            Ok((None, parts.next(), parts.next()))
        }
    }
}

/// Gradients of the input (if needed), the kernel and the parameters, packed:
/// [dx | dw | dbias | dgamma | dbeta].
struct ConvBnBackward {
    stride: usize,
    padding: usize,
    relu: bool,
    pool: Option<Pool>,
    need_dx: bool,
    saved: Arc<Saved>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One channel's coefficients for the gradient at the convolution's output,
/// `a g + b (u - mean) + c` with `g` the one at the batch-norm's output (through the ReLU and the
/// pooling), and the channel's parameter gradients.
struct Channel {
    a: f32,
    b: f32,
    c: f32,
    dgamma: f64,
    dbeta: f64,
}

impl ConvBnBackward {
    /// The batch-norm's forward coefficients of channel `ch`, as `normalize` computes them:
    /// its output before the ReLU is `u * a + b`.
    fn affine(&self, ch: usize) -> (f32, f32) {
        let scale = self.gamma[ch] as f64 * self.saved.inv_std[ch];
        (scale as f32, (self.beta[ch] as f64 - self.saved.mean[ch] * scale) as f32)
    }

    /// For plane (image, channel `ch`) of the convolution's output `u` and its incoming
    /// gradient: the sums of `g` and `g (u - mean)`; with pooling, each window's `g` (0 where
    /// its maximum did not pass the ReLU) into `sel` and its maximum's position into `at`.
    /// `z` is scratch space for the general pooling.
    fn plane(&self, u: &[f32], grad: &[f32], ch: usize, (sel, at): (&mut [f32], &mut [u32]), z: &mut Vec<f32>) -> (f32, f32) {
        let (a, b) = self.affine(ch);
        let mf = self.saved.mean[ch] as f32;
        match &self.pool {
            Some(p) if p.is_2x2() => window_sums_2x2(u, grad, p.w, (a, b, mf), (sel, at)),
            Some(p) => {
                let (_, wo) = p.out().expect("checked in the forward pass");
                z.clear();
                z.extend(u.iter().map(|&v| (v * a + b).max(0.0)));
                let (mut s1, mut s2) = (0f32, 0f32);
                for (o, ((&g, sel), at)) in grad.iter().zip(sel).zip(at).enumerate() {
                    let pos = p.arg_max(z, o / wo, o % wo);
                    let g = if z[pos] > 0.0 { g } else { 0.0 };
                    s1 += g;
                    s2 += g * (u[pos] - mf);
                    (*sel, *at) = (g, pos as u32);
                }
                (s1, s2)
            }
            None => {
                let relu = self.relu;
                let (s1, s2) = lane_sum2(u.len(), |i| {
                    let g = if relu && u[i] * a + b <= 0.0 { 0.0 } else { grad[i] };
                    (g, g * (u[i] - mf))
                });
                (s1 as f32, s2 as f32)
            }
        }
    }

    /// Every channel's coefficients from the batch's sums; with pooling, fills `sel` and `at`
    /// (see [`ConvBnBackward::plane`]) for all planes. Image by image, in fixed groups (see
    /// [`GROUP`]).
    fn channels(&self, grad: &[f32], (n, c, hw): (usize, usize, usize), sel: &mut [f32], at: &mut [u32]) -> Vec<Channel> {
        let u = &self.saved.u;
        let per = grad.len() / (n * c);
        let group = |first: usize, sel: &mut [f32], at: &mut [u32], z: &mut Vec<f32>| -> Vec<(f64, f64)> {
            let mut sums = vec![(0f64, 0f64); c];
            let images = first..(first + GROUP).min(n);
            for (t, img) in images.enumerate() {
                for (ch, sum) in sums.iter_mut().enumerate() {
                    let plane = img * c + ch;
                    let at_plane = (t * c + ch) * per;
                    let sel_at =
                        if sel.is_empty() { (&mut [][..], &mut [][..]) } else { (&mut sel[at_plane..][..per], &mut at[at_plane..][..per]) };
                    let (s1, s2) = self.plane(&u[plane * hw..][..hw], &grad[plane * per..][..per], ch, sel_at, z);
                    // Within a plane the sums are short; across planes and images, f64.
                    sum.0 += s1 as f64;
                    sum.1 += s2 as f64;
                }
            }
            sums
        };
        let partials: Vec<Vec<(f64, f64)>> = if self.pool.is_some() {
            let chunk = GROUP * c * per;
            sel.par_chunks_mut(chunk)
                .zip(at.par_chunks_mut(chunk))
                .enumerate()
                .map_init(Vec::new, |z, (i, (sel, at))| group(i * GROUP, sel, at, z))
                .collect()
        } else {
            (0..n.div_ceil(GROUP)).into_par_iter().map_init(Vec::new, |z, i| group(i * GROUP, &mut [], &mut [], z)).collect()
        };
        let m = (n * hw) as f64;
        (0..c)
            .map(|ch| {
                let (sum_g, sum_gu) = partials.iter().fold((0f64, 0f64), |(a, b), p| (a + p[ch].0, b + p[ch].1));
                let inv_std = self.saved.inv_std[ch];
                let (dbeta, dgamma) = (sum_g, sum_gu * inv_std);
                // du = k (m g - dbeta - uhat dgamma), uhat = (u - mean) inv_std, k = gamma inv_std / m.
                let k = self.gamma[ch] as f64 * inv_std / m;
                Channel { a: (k * m) as f32, b: (-k * dgamma * inv_std) as f32, c: (-k * dbeta) as f32, dgamma, dbeta }
            })
            .collect()
    }
}

impl CustomOp3 for ConvBnBackward {
    fn name(&self) -> &'static str {
        "oodlab-conv-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl, wl, self.stride, self.padding)?;
        let grad = slice(gs, gl)?;
        let (n, c, hw) = (g.n, g.o, g.cols());
        // First the batch's sums per channel, then, per group of images, the gradient at the
        // convolution's output written where the convolution's backward pass reads it.
        let windows = if self.pool.is_some() { grad.len() } else { 0 };
        let (mut window_g, mut window_at) = (vec![0f32; windows], vec![0u32; windows]);
        let channels = self.channels(grad, (n, c, hw), &mut window_g, &mut window_at);
        let u = &self.saved.u;
        let relu = self.relu;
        let fill = |img: usize, gyg: &mut [f32], ld: usize, at: usize| {
            for (ch, k) in channels.iter().enumerate() {
                let row = &mut gyg[ch * ld + at..][..hw];
                let plane = &u[(img * c + ch) * hw..][..hw];
                let mf = self.saved.mean[ch] as f32;
                match &self.pool {
                    Some(_) => {
                        for (d, &v) in row.iter_mut().zip(plane) {
                            *d = k.b * (v - mf) + k.c;
                        }
                        let per = window_g.len() / (n * c);
                        let first = (img * c + ch) * per;
                        for (&s, &pos) in window_g[first..][..per].iter().zip(&window_at[first..][..per]) {
                            row[pos as usize] += k.a * s;
                        }
                    }
                    None => {
                        let (a, b) = self.affine(ch);
                        let gr = &grad[(img * c + ch) * hw..][..hw];
                        for ((d, &v), &g) in row.iter_mut().zip(plane).zip(gr) {
                            let g = if relu && v * a + b <= 0.0 { 0.0 } else { g };
                            *d = k.a * g + k.b * (v - mf) + k.c;
                        }
                    }
                }
            }
        };
        let mut packed = conv::backward(&g, slice(xs, xl)?, slice(ws, wl)?, self.need_dx, 2 * c, fill);
        packed.extend(channels.iter().map(|k| k.dgamma as f32));
        packed.extend(channels.iter().map(|k| k.dbeta as f32));
        let len = packed.len();
        output(packed, len)
    }
}

/// For one plane `u` (rows `w` long) under 2x2 pooling with stride 2: each window's gradient `g`
/// where its maximum after `u * a + b` and the ReLU is positive (else 0) into `sel`, the
/// maximum's position into `at`, and the sums of `g` and `g (u - mean)`. The first maximum wins
/// ties, as `Pool::arg_max`. Written out for the compiler: the general loops cost several times
/// more here.
fn window_sums_2x2(u: &[f32], grad: &[f32], w: usize, (a, b, mean): (f32, f32, f32), (sel, at): (&mut [f32], &mut [u32])) -> (f32, f32) {
    let wo = w / 2;
    let (mut s1, mut s2) = (0f32, 0f32);
    let rows = grad.chunks_exact(wo).zip(sel.chunks_exact_mut(wo)).zip(at.chunks_exact_mut(wo));
    for (i, ((grad, sel), at)) in rows.enumerate() {
        let (r0, r1) = (&u[2 * i * w..][..w], &u[(2 * i + 1) * w..][..w]);
        let cells = r0.chunks_exact(2).zip(r1.chunks_exact(2)).zip(grad).zip(sel.iter_mut()).zip(at.iter_mut());
        for (j, ((((top, bottom), &g), sel), at)) in cells.enumerate() {
            let v = [top[0], top[1], bottom[0], bottom[1]];
            let z = v.map(|v| (v * a + b).max(0.0));
            // The first maximum of each row's pair, then of the two: comparisons turned into
            // indices rather than branches (on random data a branch here is mispredicted half
            // the time, which cost more than the rest of the loop).
            let (top_at, bottom_at) = ((z[1] > z[0]) as usize, 2 + (z[3] > z[2]) as usize);
            let (top_max, bottom_max) = (z[0].max(z[1]), z[2].max(z[3]));
            let k = top_at + (bottom_max > top_max) as usize * (bottom_at - top_at);
            let g = if top_max.max(bottom_max) > 0.0 { g } else { 0.0 };
            s1 += g;
            s2 += g * (v[k] - mean);
            let pos = (2 * i + (k >> 1)) * w + 2 * j + (k & 1);
            *sel = g;
            *at = pos as u32;
        }
    }
    (s1, s2)
}
