//! `lmoe`, logit-space mixing: `z_lmix = lam f(x_in) + (1 - lam) f(x_out)` (or the logits of a
//! mix at another stage, `mix_at`),
//! loss `CE(f(x_in), y) + w SoftCE(z_lmix, t) [+ w SoftCE(f(x_mix), t)] + c D(f(x_mix), z_lmix)`,
//! with `t = lam onehot(y) + (1 - lam) U` and `x_mix` the input-space mix. Every choice the paper's
//! abstract leaves open is a switch (docs/methods.md).

use candle_core::{Result, Tensor, D};
use oodlab_spec::{Consistency, ConsistencyLoss, ConsistencySpace, Detach, Forward, LmoeParams};

use super::losses::{ce, lam_column, lerp, mix_targets, soft_ce};
use super::{place, Batch, MixDraw, StepLoss};
use crate::model::Staged;

/// `D(z_xmix, z_lmix)` with the configured detach side. MSE: mean squared difference over all
/// logits. KL: `KL(softmax(target) || softmax(other))` per sample, batch mean, where the target is
/// the detached side (the logit mix when nothing is detached).
pub fn consistency(z_xmix: &Tensor, z_lmix: &Tensor, c: &Consistency) -> Result<Option<Tensor>> {
    let (z_xmix, z_lmix) = (&in_space(z_xmix, c.space)?, &in_space(z_lmix, c.space)?);
    let (x, l) = match c.detach {
        Detach::LogitMix => (z_xmix.clone(), z_lmix.detach()),
        Detach::InputMix => (z_xmix.detach(), z_lmix.clone()),
        Detach::None => (z_xmix.clone(), z_lmix.clone()),
    };
    let d = match c.loss {
        ConsistencyLoss::None => return Ok(None),
        ConsistencyLoss::Mse => (x - l)?.sqr()?.mean_all()?,
        ConsistencyLoss::Kl => {
            let (target, other) = if c.detach == Detach::InputMix { (x, l) } else { (l, x) };
            let log_t = candle_nn::ops::log_softmax(&target, D::Minus1)?;
            let log_o = candle_nn::ops::log_softmax(&other, D::Minus1)?;
            (log_t.exp()? * (log_t - log_o)?)?.sum(D::Minus1)?.mean(0)?
        }
    };
    Ok(Some((d * c.weight)?))
}

/// The logits `(b, k)` in the consistency term's space. KL compares softmaxes, which no space
/// changes; MSE on raw logits also sees a per-sample constant shift that the others remove.
pub fn in_space(z: &Tensor, space: ConsistencySpace) -> Result<Tensor> {
    match space {
        ConsistencySpace::Logits => Ok(z.clone()),
        ConsistencySpace::Centered => z.broadcast_sub(&z.mean_keepdim(D::Minus1)?),
        ConsistencySpace::LogSoftmax => candle_nn::ops::log_softmax(z, D::Minus1),
    }
}

/// The loss from logits; `lam` is `(b, 1)`; `z_xmix` is needed when the consistency term or the
/// input-mix term is on. The logit mix is made here from `z_in` and `z_out`.
pub fn loss(
    z_in: &Tensor,
    z_out: &Tensor,
    z_xmix: Option<&Tensor>,
    y: &Tensor,
    lam: &Tensor,
    p: &LmoeParams,
    classes: usize,
) -> Result<Tensor> {
    loss_of_mix(z_in, &lerp(z_in, z_out, lam)?, z_xmix, y, lam, p, classes)
}

/// The loss with the mix's logits given: `z_mix` is the logit mix, or the logits of a mix at
/// another stage (`mix_at`).
pub fn loss_of_mix(
    z_in: &Tensor,
    z_mix: &Tensor,
    z_xmix: Option<&Tensor>,
    y: &Tensor,
    lam: &Tensor,
    p: &LmoeParams,
    classes: usize,
) -> Result<Tensor> {
    let t = mix_targets(y, lam, classes)?;
    let mut total = (ce(z_in, y)? + (soft_ce(z_mix, &t)? * p.weight)?)?;
    if p.needs_input_mix() {
        let z_xmix = z_xmix.ok_or_else(|| candle_core::Error::Msg("lmoe needs the input-mix logits".into()))?;
        if p.input_mix_ce {
            total = (total + (soft_ce(z_xmix, &t)? * p.weight)?)?;
        }
        if let Some(d) = consistency(z_xmix, z_mix, &p.consistency)? {
            total = (total + d)?;
        }
    }
    Ok(total)
}

/// One step: the input mix (when a term needs it) uses the same lambdas as the representation
/// mix, which is at the logits unless `mix_at` says otherwise (place.rs).
pub fn step(model: &dyn Staged, batch: &Batch, p: &LmoeParams, mix: &MixDraw, forward: Forward) -> Result<StepLoss> {
    let z = place::passes(model, batch.images, batch.outliers()?, mix, p.place(), forward, p.needs_input_mix())?;
    let lam = lam_column(&z.lams, &z.z_in)?;
    let loss = loss_of_mix(&z.z_in, &z.z_mix, z.z_xmix.as_ref(), batch.labels, &lam, p, batch.classes)?;
    Ok(StepLoss { loss, id_logits: z.z_in })
}
