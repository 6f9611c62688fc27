//! `mixoe`, Mixture Outlier Exposure (Zhang et al.): `lam ~ Beta(a, a)` once per batch, `x_mix` by
//! mixup or cutmix (lam then becomes the exact kept share), target
//! `t = lam onehot(y) + (1 - lam) U`, loss `CE(f(x_in), y) + w SoftCE(f(x_mix), t)`; with `mix_at`
//! the mix is of the representations at a stage instead (place.rs).

use candle_core::{Result, Tensor};
use oodlab_spec::{Forward, MixPlace};

use super::losses::{ce, lam_column, mix_targets, soft_ce};
use super::{place, Batch, MixDraw, StepLoss};
use crate::model::Staged;

/// The loss from logits; `lam` is `(b, 1)`.
pub fn loss(z_in: &Tensor, y: &Tensor, z_mix: &Tensor, lam: &Tensor, weight: f64, classes: usize) -> Result<Tensor> {
    ce(z_in, y)? + (soft_ce(z_mix, &mix_targets(y, lam, classes)?)? * weight)?
}

/// One step, mixing at `mix_at` (the input unless set: `f(x_in)`, then `f(x_mix)`).
pub fn step(model: &dyn Staged, batch: &Batch, weight: f64, mix: &MixDraw, at: MixPlace, forward: Forward) -> Result<StepLoss> {
    let z = place::passes(model, batch.images, batch.outliers()?, mix, at, forward, false)?;
    let lam = lam_column(&z.lams, &z.z_in)?;
    Ok(StepLoss { loss: loss(&z.z_in, batch.labels, &z.z_mix, &lam, weight, batch.classes)?, id_logits: z.z_in })
}
