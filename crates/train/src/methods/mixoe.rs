//! `mixoe`, Mixture Outlier Exposure (Zhang et al.): `lam ~ Beta(a, a)` once per batch, `x_mix` by
//! mixup or cutmix (lam then becomes the exact kept share), target
//! `t = lam onehot(y) + (1 - lam) U`, loss `CE(f(x_in), y) + w SoftCE(f(x_mix), t)`.

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use oodlab_spec::{LamPer, Mix};
use rand_chacha::ChaCha8Rng;

use super::losses::{ce, lam_column, mix_targets, soft_ce};
use super::mixing::{draw_lambdas, mix_inputs};
use super::{forward_joint, Batch, StepLoss};

/// The loss from logits; `lam` is `(b, 1)`.
pub fn loss(z_in: &Tensor, y: &Tensor, z_mix: &Tensor, lam: &Tensor, weight: f64, classes: usize) -> Result<Tensor> {
    ce(z_in, y)? + (soft_ce(z_mix, &mix_targets(y, lam, classes)?)? * weight)?
}

pub fn step(model: &dyn ModuleT, batch: &Batch, mix: Mix, alpha: f64, weight: f64, rng: &mut ChaCha8Rng) -> Result<StepLoss> {
    let b = batch.images.dim(0)?;
    let lams = draw_lambdas(rng, alpha, b, LamPer::Batch);
    let (x_mix, lams) = mix_inputs(batch.images, batch.outliers()?, &lams, mix, rng)?;
    let z = forward_joint(model, &[batch.images, &x_mix])?;
    let lam = lam_column(&lams, &z[0])?;
    Ok(StepLoss { loss: loss(&z[0], batch.labels, &z[1], &lam, weight, batch.classes)?, id_logits: z[0].clone() })
}
