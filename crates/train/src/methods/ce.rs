//! `ce`: cross-entropy on the ID classes, the baseline every OE-family method fine-tunes from.

use candle_core::Result;
use candle_nn::ModuleT;

use super::losses::ce;
use super::{Batch, StepLoss};

pub fn step(model: &dyn ModuleT, batch: &Batch) -> Result<StepLoss> {
    let logits = model.forward_t(batch.images, true)?;
    Ok(StepLoss { loss: ce(&logits, batch.labels)?, id_logits: logits })
}
