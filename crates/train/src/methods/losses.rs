//! Loss pieces shared by the methods, on logits `(b, k)`.

use candle_core::{Result, Tensor, D};

/// `log sum_k exp(z_k)` per row, `(b,)`. The max is a constant shift, so it is detached.
pub fn logsumexp(z: &Tensor) -> Result<Tensor> {
    let max = z.max_keepdim(D::Minus1)?.detach();
    z.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()?.add(&max)?.squeeze(D::Minus1)
}

/// Mean cross-entropy with integer labels.
pub fn ce(z: &Tensor, y: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(z, y)
}

/// `SoftCE(z, t) = -sum_k t_k log softmax(z)_k`, averaged over the batch.
pub fn soft_ce(z: &Tensor, t: &Tensor) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(z, D::Minus1)?;
    (t * log_p)?.sum(D::Minus1)?.mean(0)?.neg()
}

/// `SoftCE(z, U)` against the uniform distribution: `logsumexp(z) - mean_k z_k`, batch mean.
pub fn soft_ce_uniform(z: &Tensor) -> Result<Tensor> {
    (logsumexp(z)? - z.mean(D::Minus1)?)?.mean(0)
}

/// Mix targets `lam onehot(y) + (1 - lam) U` for `lam` of shape `(b, 1)`.
pub fn mix_targets(y: &Tensor, lam: &Tensor, classes: usize) -> Result<Tensor> {
    let onehot = candle_nn::encoding::one_hot(y.clone(), classes, 1.0f64, 0.0f64)?.to_dtype(lam.dtype())?;
    let uniform = (1.0 - lam)? / classes as f64;
    onehot.broadcast_mul(lam)?.broadcast_add(&uniform?)
}

/// `lam a + (1 - lam) b` with `lam` broadcast from `(b, 1)` or `(b, 1, 1, 1)`.
pub fn lerp(a: &Tensor, b: &Tensor, lam: &Tensor) -> Result<Tensor> {
    a.broadcast_mul(lam)?.add(&b.broadcast_mul(&(1.0 - lam)?)?)
}

/// A column `(b, 1)` of lambdas in the dtype of `like`.
pub fn lam_column(lams: &[f64], like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(lams.to_vec(), (lams.len(), 1), like.device())?.to_dtype(like.dtype())
}
