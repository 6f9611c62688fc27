//! `oe`, Outlier Exposure (Hendrycks et al.): `CE(f(x_in), y) + w SoftCE(f(x_out), U)`, where
//! SoftCE to the uniform distribution is `logsumexp(z) - mean_k z_k`.

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use oodlab_spec::Forward;

use super::losses::{ce, soft_ce_uniform};
use super::{forward_passes, Batch, StepLoss};

pub fn loss(z_in: &Tensor, y: &Tensor, z_out: &Tensor, weight: f64) -> Result<Tensor> {
    ce(z_in, y)? + (soft_ce_uniform(z_out)? * weight)?
}

pub fn step(model: &dyn ModuleT, batch: &Batch, weight: f64, forward: Forward) -> Result<StepLoss> {
    let z = forward_passes(model, &[batch.images, batch.outliers()?], forward)?;
    Ok(StepLoss { loss: loss(&z[0], batch.labels, &z[1], weight)?, id_logits: z[0].clone() })
}
