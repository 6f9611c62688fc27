//! Ops written with candle's own tensor ops, for where candle's built-in op is wrong or fails
//! and no kernel of this crate applies (a GPU without the `cuda` build's ops, a dtype the kernels
//! do not take): their backward passes are candle's autograd over slices and products.

use candle_core::{Result, Tensor};

/// Max-pooling as the maximum of the k² strided views of the input, each a differentiable slice
/// (candle's own max-pool has no backward pass for overlapping windows, and a wrong one for the
/// others). Padding is with zeros, so with padding the input must be non-negative (it follows a
/// ReLU), where zeros give the same maxima as PyTorch's -inf padding.
///
/// Each window's gradient goes to its first maximum only, as PyTorch's: the output is the sum of
/// the views each times a constant mask that marks, per window, the first view equal to the
/// maximum. (Candle's `max` sends the gradient to every element equal to the maximum: in a flat
/// region, such as an image's background, a 2x2 window passed on four times the gradient, and
/// training went differently from PyTorch's; tests/cnn_kernels.rs and tests/resnet.rs.)
pub fn max_pool_after_relu(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let views = strided_views(x, k, stride, padding)?;
    let max = Tensor::stack(&views, 4)?.max(4)?.detach();
    // Where a window's maximum is 0, a padding zero must not win over the pixels (PyTorch pads
    // with -inf): each view's mask of real pixels, the same views of a padded plane of ones.
    let (_, _, h, w) = x.dims4()?;
    let real = match padding {
        0 => None,
        _ => Some(strided_views(&Tensor::ones((1, 1, h, w), x.dtype(), x.device())?, k, stride, padding)?),
    };
    // `taken` marks the windows whose maximum an earlier view already holds.
    let mut taken: Option<Tensor> = None;
    let mut y: Option<Tensor> = None;
    for (i, view) in views.iter().enumerate() {
        let hit = view.detach().eq(&max)?.to_dtype(view.dtype())?;
        let hit = match &real {
            Some(real) => hit.broadcast_mul(&real[i])?,
            None => hit,
        };
        let first = match &taken {
            Some(t) => (hit * t.affine(-1.0, 1.0)?)?,
            None => hit,
        };
        let term = (view * &first)?;
        taken = Some(match taken {
            Some(t) => (t + first)?,
            None => first,
        });
        y = Some(match y {
            Some(y) => (y + term)?,
            None => term,
        });
    }
    y.ok_or_else(|| candle_core::Error::Msg("max-pooling with an empty window".into()))
}

/// The k² views of `x` (n, c, h, w) zero-padded by `padding` that a k x k window with `stride`
/// sees at each of its offsets, each (n, c, ho, wo), offsets in row-major order.
fn strided_views(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Vec<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = ((h + 2 * padding - k) / stride + 1, (w + 2 * padding - k) / stride + 1);
    // Extra zeros at the bottom and right let every offset's slice span `stride * out` rows; the
    // rows they add are never selected.
    let x = x.pad_with_zeros(2, padding, padding + stride)?.pad_with_zeros(3, padding, padding + stride)?;
    let wx = x.dim(3)?;
    let mut views = Vec::with_capacity(k * k);
    for di in 0..k {
        // Rows di, di + stride, ...: take stride * ho rows, fold them as (ho, stride), keep the first.
        let rows = x.narrow(2, di, stride * ho)?.reshape((n, c, ho, stride, wx))?.narrow(3, 0, 1)?.squeeze(3)?;
        for dj in 0..k {
            views.push(rows.narrow(3, dj, stride * wo)?.reshape((n, c, ho, wo, stride))?.narrow(4, 0, 1)?.squeeze(4)?);
        }
    }
    Ok(views)
}

/// A convolution as a matrix product over unfolded patches (im2col written with tensor slices), so
/// that its backward pass is matrix products and slice gradients. It is not faster than candle's
/// conv2d, on the CPU or on a GPU, and takes more memory (docs/performance.md); it is used where
/// candle's backward pass fails.
pub fn conv_unfold(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (cout, cin, k, _) = w.dims4()?;
    debug_assert_eq!(c, cin);
    let (ho, wo) = ((h + 2 * padding - k) / stride + 1, (wd + 2 * padding - k) / stride + 1);
    // (n, c, k*k, ho, wo): rows ordered (channel, kernel row, kernel column) as the weight's.
    let cols = Tensor::stack(&strided_views(x, k, stride, padding)?, 2)?.reshape((n, c * k * k, ho * wo))?;
    let w = w.reshape((cout, c * k * k))?;
    w.broadcast_left(n)?.matmul(&cols)?.reshape((n, cout, ho, wo))
}
