//! `ce`: cross-entropy on the ID classes, the baseline every OE-family method fine-tunes from.

use candle_core::Result;
use candle_nn::ModuleT;

use super::{Batch, StepLoss};

pub fn loss(model: &dyn ModuleT, batch: &Batch) -> Result<StepLoss> {
    let logits = model.forward_t(batch.images, true)?;
    let loss = candle_nn::loss::cross_entropy(&logits, batch.labels)?;
    Ok(StepLoss { loss, id_logits: logits })
}
