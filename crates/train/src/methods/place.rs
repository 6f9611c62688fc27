//! The forward passes of a mixing step that mixes at any stage (`mix_at`), from the input (MixOE)
//! to the logits (LMOE): `h` the layers up to the stage, `g` those after it,
//! `z_mix = g(noise(λ h(x_in) + (1 − λ) h(x_out)))` (at `input` the mix is MixOE's mixup or
//! cutmix). How the inputs are grouped into training-mode passes decides the batch-norm
//! statistics each is normalized with and how often the running statistics move
//! (docs/methods.md, "Where to mix"):
//!
//! - `forward: separate`, `pair: separate`: `f(x_in)` (its `h(x_in)` is the mix's ID side),
//!   `h(x_out)`, `g(mix)`, then `f(x_mix)` when LMOE's input mix is needed; each layer sees each
//!   of these once, in that order;
//! - `forward: separate`, `pair: joint` (the authors' code): `f(x_in)`, then one pass
//!   `h(cat(x_in, x_out))` → mix → `g`, then `f(x_mix)`;
//! - `forward: joint`: every input in one pass, `h(cat(x_in, x_out[, x_mix]))` then
//!   `g(cat(h(x_in), mix[, h(x_mix)]))`, so that each layer is run once per step.
//!
//! With no layers before the stage (`input`) or after it (`logits`) that part is no pass at all,
//! which keeps MixOE's two passes and LMOE's three exactly as they were.

use candle_core::{Result, Tensor};
use oodlab_spec::{Forward, MixPlace, Pair, Stage};

use super::MixDraw;
use crate::model::Staged;

/// The logits of one mixing step.
pub struct MixLogits {
    /// `f(x_in)`, which the cross-entropy reads.
    pub z_in: Tensor,
    /// The representation mix carried to the logits.
    pub z_mix: Tensor,
    /// `f(x_mix)` of the input-space mix, when LMOE's consistency or input-mix term needs it.
    pub z_xmix: Option<Tensor>,
    /// λ of each ID image as the targets use it (cutmix: the share of pixels kept).
    pub lams: Vec<f64>,
}

/// Runs a mixing step's passes. `input_mix`: also compute LMOE's input-space mix `x_mix` (with
/// the same draw) and its logits.
pub fn passes(
    model: &dyn Staged,
    x_in: &Tensor,
    x_out: &Tensor,
    draw: &MixDraw,
    place: MixPlace,
    forward: Forward,
    input_mix: bool,
) -> Result<MixLogits> {
    let at = place.at;
    // The input mix first: for cutmix it fixes the λ every mix of the step uses.
    let (x_mix, mut lams) = match input_mix {
        true => {
            let (x, l) = draw.apply(x_in, x_out)?;
            (Some(x), l)
        }
        false => (None, draw.lams.clone()),
    };
    let mut mix = |h_in: &Tensor, h_out: &Tensor| -> Result<Tensor> {
        let r = if at == Stage::Input {
            let (r, l) = draw.apply(h_in, h_out)?;
            lams = l;
            r
        } else {
            super::losses::lerp(h_in, h_out, &lam_like(&lams, h_in)?)?
        };
        match &draw.noise {
            Some(noise) => noise.apply(&r),
            None => Ok(r),
        }
    };
    let (z_in, z_mix, z_xmix) = match (forward, place.pair) {
        (Forward::Separate, Pair::Separate) => {
            let h_in = model.span(x_in, Stage::Input, at, true)?;
            let z_in = model.span(&h_in, at, Stage::Logits, true)?;
            let h_out = model.span(x_out, Stage::Input, at, true)?;
            let z_mix = model.span(&mix(&h_in, &h_out)?, at, Stage::Logits, true)?;
            let z_xmix = x_mix.as_ref().map(|x| model.forward_t(x, true)).transpose()?;
            (z_in, z_mix, z_xmix)
        }
        (Forward::Separate, Pair::Joint) => {
            let z_in = model.forward_t(x_in, true)?;
            let h = together(model, &[x_in, x_out], Stage::Input, at)?;
            let z_mix = model.span(&mix(&h[0], &h[1])?, at, Stage::Logits, true)?;
            let z_xmix = x_mix.as_ref().map(|x| model.forward_t(x, true)).transpose()?;
            (z_in, z_mix, z_xmix)
        }
        (Forward::Joint, _) => {
            let mut inputs = vec![x_in, x_out];
            inputs.extend(x_mix.as_ref());
            let h = together(model, &inputs, Stage::Input, at)?;
            let r = mix(&h[0], &h[1])?;
            let mut after = vec![&h[0], &r];
            after.extend(h.get(2));
            let mut z = together(model, &after, at, Stage::Logits)?.into_iter();
            let (z_in, z_mix) = (z.next().expect("the ID logits"), z.next().expect("the mix's logits"));
            (z_in, z_mix, z.next())
        }
    };
    Ok(MixLogits { z_in, z_mix, z_xmix, lams })
}

/// The layers from `from` to `to` over `inputs` in one training-mode pass over their
/// concatenation, split back; with no layers between, the inputs as they are.
fn together(model: &dyn Staged, inputs: &[&Tensor], from: Stage, to: Stage) -> Result<Vec<Tensor>> {
    if from == to {
        return Ok(inputs.iter().map(|t| (*t).clone()).collect());
    }
    let z = model.span(&Tensor::cat(inputs, 0)?, from, to, true)?;
    let mut out = Vec::with_capacity(inputs.len());
    let mut start = 0;
    for t in inputs {
        let n = t.dim(0)?;
        out.push(z.narrow(0, start, n)?);
        start += n;
    }
    Ok(out)
}

/// λ per image as `(b, 1, …)` of `like`'s rank and format, to scale a representation.
fn lam_like(lams: &[f64], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; like.rank()];
    shape[0] = lams.len();
    Tensor::from_vec(lams.to_vec(), shape, like.device())?.to_dtype(like.dtype())
}
