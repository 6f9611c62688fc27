//! One file per training method; each computes a step's loss from a batch. The loss of each
//! method is also exposed on logits (`loss`) so that it can be checked against reference values.

pub mod ce;
pub mod energy_oe;
pub mod lmoe;
pub mod losses;
pub mod mixing;
pub mod mixoe;
pub mod noise;
pub mod oe;
pub mod place;

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use oodlab_spec::{Forward, LamPer, Method, Mix, Stage};
use rand_chacha::ChaCha8Rng;

use crate::model::Staged;
pub use mixing::MixDraw;
pub use noise::NoiseDraw;

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

/// Training-mode forward passes over a step's inputs, grouped as `forward` says: one pass over
/// their concatenation (batch-norm statistics of the joint batch, as OE's code) or one pass
/// each, in order (each normalized by its own statistics and updating the running statistics
/// in turn, as MixOE's code). The logits of each input, in order.
pub fn forward_passes(model: &dyn ModuleT, inputs: &[&Tensor], forward: Forward) -> Result<Vec<Tensor>> {
    match forward {
        Forward::Separate => inputs.iter().map(|x| model.forward_t(x, true)).collect(),
        Forward::Joint => {
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
    }
}

/// The input mix a step of `method` needs, drawn from `rng` (None for methods that do not mix
/// inputs, or LMOE without an input-mix term).
pub fn draw_mix(method: &Method, batch: &Batch, rng: &mut ChaCha8Rng) -> Result<Option<MixDraw>> {
    let (b, _, h, w) = batch.images.dims4()?;
    let mut draw = match method {
        Method::Mixoe(p) => MixDraw::draw(rng, p.mix, p.alpha(), LamPer::Batch, b, (h, w)),
        Method::Lmoe(p) => {
            // Without an input mix (LMOE's input-mix terms, or a mix at the input) only the
            // lambdas are used: no box is drawn.
            let mix = if p.needs_input_mix() || p.place().at == Stage::Input { p.mix } else { Mix::Mixup };
            MixDraw::draw(rng, mix, p.alpha(), p.lam_per, b, (h, w))
        }
        _ => return Ok(None),
    };
    // After the mix's own draws, so that a run without noise draws what it always drew.
    draw.noise = NoiseDraw::draw(rng, method.place().and_then(|p| p.noise));
    Ok(Some(draw))
}

/// The step loss of `method`; `rng` draws the mixing coefficients and boxes.
pub fn step_loss(method: &Method, model: &dyn Staged, batch: &Batch, rng: &mut ChaCha8Rng) -> Result<StepLoss> {
    let mix = draw_mix(method, batch, rng)?;
    step_loss_with(method, model, batch, mix.as_ref())
}

/// The step loss of `method` with the mix drawn beforehand ([`draw_mix`]).
pub fn step_loss_with(method: &Method, model: &dyn Staged, batch: &Batch, mix: Option<&MixDraw>) -> Result<StepLoss> {
    let need_mix = || mix.ok_or_else(|| candle_core::Error::Msg(format!("{} needs a drawn mix", method.name())));
    let forward = method.forward();
    match method {
        Method::Ce(_) => ce::step(model, batch),
        Method::Oe(p) => oe::step(model, batch, p.weight, forward),
        Method::EnergyOe(p) => energy_oe::step(model, batch, p.weight, p.m_in, p.m_out, forward),
        Method::Mixoe(p) => mixoe::step(model, batch, p.weight, need_mix()?, p.place(), forward),
        Method::Lmoe(p) => lmoe::step(model, batch, p, need_mix()?, forward),
    }
}
