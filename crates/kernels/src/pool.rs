//! Max-pooling over square windows with stride and padding (padding never wins, as PyTorch's
//! -inf), keeping each window's arg-max for the backward pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::{output, slice};

/// PyTorch's `max_pool2d(x, k, stride, padding)` of an (n, c, h, w) tensor.
pub fn max_pool2d(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let p = Pool { k, stride, padding, h, w };
    p.out()?;
    x.contiguous()?.apply_op1(p)
}

#[derive(Clone, Copy)]
pub(crate) struct Pool {
    pub(crate) k: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
}

impl Pool {
    pub(crate) fn out(&self) -> Result<(usize, usize)> {
        if self.stride == 0
            || self.k == 0
            || self.padding * 2 > self.k
            || self.h + 2 * self.padding < self.k
            || self.w + 2 * self.padding < self.k
        {
            candle_core::bail!("max_pool2d: kernel {} stride {} padding {} on {}x{}", self.k, self.stride, self.padding, self.h, self.w);
        }
        Ok(((self.h + 2 * self.padding - self.k) / self.stride + 1, (self.w + 2 * self.padding - self.k) / self.stride + 1))
    }
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        "oodlab-max-pool2d"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, _, _) = xl.shape().dims4()?;
        let (ho, wo) = self.out()?;
        let x = slice(xs, xl)?;
        let mut y = vec![0f32; n * c * ho * wo];
        y.par_chunks_mut(ho * wo).enumerate().for_each(|(plane, y)| {
            let x = &x[plane * self.h * self.w..(plane + 1) * self.h * self.w];
            for (o, y) in y.iter_mut().enumerate() {
                *y = x[self.arg_max(x, o / wo, o % wo)];
            }
        });
        output(y, (n, c, ho, wo))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &PoolBackward(*self))?))
    }
}

impl Pool {
    /// 2x2 windows with stride 2 and no padding, the common case, which has a fast path: each
    /// window's four values are read directly, without the general loops.
    pub(crate) fn is_2x2(&self) -> bool {
        self.k == 2 && self.stride == 2 && self.padding == 0
    }

    /// The position in `plane` of window (i, j)'s maximum; the first one wins ties, as PyTorch's.
    #[inline(always)]
    pub(crate) fn arg_max(&self, plane: &[f32], i: usize, j: usize) -> usize {
        if self.padding == 0 {
            // Without padding every window lies inside the plane: no bounds to check.
            let first = i * self.stride * self.w + j * self.stride;
            let (mut best, mut at) = (plane[first], first);
            for di in 0..self.k {
                let row = first + di * self.w;
                for (dj, &v) in plane[row..row + self.k].iter().enumerate() {
                    if v > best {
                        (best, at) = (v, row + dj);
                    }
                }
            }
            return at;
        }
        let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
        for di in 0..self.k {
            let Some(r) = (i * self.stride + di).checked_sub(self.padding).filter(|&r| r < self.h) else { continue };
            for dj in 0..self.k {
                let Some(q) = (j * self.stride + dj).checked_sub(self.padding).filter(|&q| q < self.w) else { continue };
                let v = plane[r * self.w + q];
                if v > best || at == usize::MAX {
                    (best, at) = (v, r * self.w + q);
                }
            }
        }
        at
    }
}

/// Each window's gradient added at its arg-max, found again in the input (cheaper than keeping
/// indices: the op's output stays one tensor).
struct PoolBackward(Pool);

impl CustomOp2 for PoolBackward {
    fn name(&self) -> &'static str {
        "oodlab-max-pool2d-backward"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let (x, grad) = (slice(xs, xl)?, slice(gs, gl)?);
        let (ho, wo) = p.out()?;
        let plane = p.h * p.w;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(plane).enumerate().for_each(|(k, dx)| {
            let x = &x[k * plane..(k + 1) * plane];
            for (o, g) in grad[k * ho * wo..(k + 1) * ho * wo].iter().enumerate() {
                dx[p.arg_max(x, o / wo, o % wo)] += g;
            }
        });
        output(dx, xl.shape().clone())
    }
}
