//! One file per training method: each computes a step's loss from a batch.

mod ce;

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use oodlab_spec::Method;

/// A training batch: normalized ID images `(b, 1, h, w)` and their labels `(b,)`.
pub struct Batch<'a> {
    pub images: &'a Tensor,
    pub labels: &'a Tensor,
}

/// The loss of one step and the ID logits (for training accuracy).
pub struct StepLoss {
    pub loss: Tensor,
    pub id_logits: Tensor,
}

pub fn step_loss(method: &Method, model: &dyn ModuleT, batch: &Batch) -> Result<StepLoss> {
    match method {
        Method::Ce {} => ce::loss(model, batch),
    }
}
