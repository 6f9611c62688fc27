//! ReLU whose backward pass is one pass over the output (candle's takes four).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::{output, slice};

/// Chunks of work small enough to spread over threads, large enough to be worth it.
const CHUNK: usize = 1 << 14;

pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "oodlab-relu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(xs, xl)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &v)| *y = v.max(0.0)));
        output(y, xl.shape().clone())
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &ReluBackward)?))
    }
}

/// The gradient where the output is positive, 0 elsewhere (PyTorch's convention at 0).
struct ReluBackward;

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "oodlab-relu-backward"
    }

    fn cpu_fwd(&self, ys: &CpuStorage, yl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(ys, yl)?, slice(gs, gl)?);
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(CHUNK)
            .zip(y.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(d, (y, g))| d.iter_mut().zip(y.iter().zip(g)).for_each(|(d, (&y, &g))| *d = if y > 0.0 { g } else { 0.0 }));
        output(dx, yl.shape().clone())
    }
}
