//! `mixoe`, Mixture Outlier Exposure (Zhang et al.): `lam ~ Beta(a, a)` once per batch, `x_mix` by
//! mixup or cutmix (lam then becomes the exact kept share), target
//! `t = lam onehot(y) + (1 - lam) U`, loss `CE(f(x_in), y) + w SoftCE(f(x_mix), t)`.

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use oodlab_spec::Forward;

use super::losses::{ce, lam_column, mix_targets, soft_ce};
use super::{forward_passes, Batch, MixDraw, StepLoss};

/// The loss from logits; `lam` is `(b, 1)`.
pub fn loss(z_in: &Tensor, y: &Tensor, z_mix: &Tensor, lam: &Tensor, weight: f64, classes: usize) -> Result<Tensor> {
    ce(z_in, y)? + (soft_ce(z_mix, &mix_targets(y, lam, classes)?)? * weight)?
}

pub fn step(model: &dyn ModuleT, batch: &Batch, weight: f64, mix: &MixDraw, forward: Forward) -> Result<StepLoss> {
    let (x_mix, lams) = mix.apply(batch.images, batch.outliers()?)?;
    let z = forward_passes(model, &[batch.images, &x_mix], forward)?;
    let lam = lam_column(&lams, &z[0])?;
    Ok(StepLoss { loss: loss(&z[0], batch.labels, &z[1], &lam, weight, batch.classes)?, id_logits: z[0].clone() })
}
