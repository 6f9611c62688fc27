//! One file per training method; each computes a step's loss from a batch. The loss of each
//! method is also exposed on logits (`loss`) so that it can be checked against reference values.

pub mod ce;
pub mod energy_oe;
pub mod lmoe;
pub mod losses;
pub mod mixing;
pub mod mixoe;
pub mod oe;

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use oodlab_spec::Method;
use rand_chacha::ChaCha8Rng;

/// A training step's inputs: normalized ID images `(b, 1, h, w)`, their labels `(b,)`, and for
/// OE-family methods a batch of outlier images.
pub struct Batch<'a> {
    pub images: &'a Tensor,
    pub labels: &'a Tensor,
    pub outliers: Option<&'a Tensor>,
    pub classes: usize,
}

impl Batch<'_> {
    fn outliers(&self) -> Result<&Tensor> {
        self.outliers.ok_or_else(|| candle_core::Error::Msg("this method needs a batch of outliers".into()))
    }
}

/// The loss of one step and the ID logits (for training accuracy).
pub struct StepLoss {
    pub loss: Tensor,
    pub id_logits: Tensor,
}

/// One training-mode forward pass over several inputs, concatenated along the batch: batch-norm
/// statistics are those of the joint batch, as in the OE reference code; then split back.
pub fn forward_joint(model: &dyn ModuleT, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let sizes: Vec<usize> = inputs.iter().map(|t| t.dim(0)).collect::<Result<_>>()?;
    let z = model.forward_t(&Tensor::cat(inputs, 0)?, true)?;
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for n in sizes {
        out.push(z.narrow(0, start, n)?);
        start += n;
    }
    Ok(out)
}

/// The step loss of `method`; `rng` draws the mixing coefficients and boxes.
pub fn step_loss(method: &Method, model: &dyn ModuleT, batch: &Batch, rng: &mut ChaCha8Rng) -> Result<StepLoss> {
    match method {
        Method::Ce(_) => ce::step(model, batch),
        Method::Oe(p) => oe::step(model, batch, p.weight),
        Method::EnergyOe(p) => energy_oe::step(model, batch, p.weight, p.m_in, p.m_out),
        Method::Mixoe(p) => mixoe::step(model, batch, p.mix, p.alpha(), p.weight, rng),
        Method::Lmoe(p) => lmoe::step(model, batch, p, rng),
    }
}
