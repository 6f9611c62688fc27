//! `energy-oe`, energy-bounded OE (Liu et al.): with `E = -logsumexp(z)`,
//! `CE + w (mean relu(E_in - m_in)^2 + mean relu(m_out - E_out)^2)`.

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use oodlab_spec::Forward;

use super::losses::{ce, logsumexp};
use super::{forward_passes, Batch, StepLoss};

pub fn loss(z_in: &Tensor, y: &Tensor, z_out: &Tensor, weight: f64, m_in: f64, m_out: f64) -> Result<Tensor> {
    let e_in = logsumexp(z_in)?.neg()?;
    let e_out = logsumexp(z_out)?.neg()?;
    let hinge_in = (e_in - m_in)?.relu()?.sqr()?.mean(0)?;
    let hinge_out = (e_out.neg()? + m_out)?.relu()?.sqr()?.mean(0)?;
    ce(z_in, y)? + ((hinge_in + hinge_out)? * weight)?
}

pub fn step(model: &dyn ModuleT, batch: &Batch, weight: f64, m_in: f64, m_out: f64, forward: Forward) -> Result<StepLoss> {
    let z = forward_passes(model, &[batch.images, batch.outliers()?], forward)?;
    Ok(StepLoss { loss: loss(&z[0], batch.labels, &z[1], weight, m_in, m_out)?, id_logits: z[0].clone() })
}
