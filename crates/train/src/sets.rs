//! The image sets of a run: ID train/validation/test, the held-out classes and coarse OOD sets.

use oodlab_data::split::ClassSplit;
use oodlab_data::{idx, order, ImageSet};
use oodlab_spec::{FilePair, RunConfig};

use crate::TrainError;

/// Name of the fine-grained OOD set: test images of the held-out classes.
pub const HELDOUT: &str = "heldout";

pub struct RunSets {
    pub train: ImageSet,
    pub val: ImageSet,
    pub id_test: ImageSet,
    /// (name, images) of every OOD set: the held-out classes first, then coarse sets.
    pub ood: Vec<(String, ImageSet)>,
}

fn load(pair: &FilePair) -> Result<ImageSet, TrainError> {
    Ok(idx::load(&pair.images, &pair.labels)?)
}

fn part<'a>(cfg: &'a RunConfig, name: &str, train: bool) -> Result<&'a FilePair, TrainError> {
    let ds = cfg.datasets.get(name).ok_or_else(|| TrainError::Setup(format!("dataset `{name}` is missing from the run config")))?;
    let pair = if train { &ds.train } else { &ds.test };
    pair.as_ref().ok_or_else(|| TrainError::Setup(format!("dataset `{name}` has no {} files", if train { "train" } else { "test" })))
}

pub fn load_sets(cfg: &RunConfig) -> Result<RunSets, TrainError> {
    let d = &cfg.settings.data;
    let split = ClassSplit { id_classes: cfg.classes.id_classes.clone(), heldout: cfg.classes.heldout.clone() };
    let mut train_all = split.id_subset(&load(part(cfg, &d.id, true)?)?);
    if let Some(limit) = d.train_limit {
        train_all = train_all.truncate(limit);
    }
    let (train_idx, val_idx) = order::carve_validation(train_all.len(), d.val_fraction, cfg.seed);
    let test = load(part(cfg, &d.id, false)?)?;
    let mut ood = Vec::new();
    if !split.heldout.is_empty() {
        ood.push((HELDOUT.to_string(), split.heldout_subset(&test)));
    }
    for name in &d.ood {
        ood.push((name.clone(), load(part(cfg, name, false)?)?));
    }
    let sets = RunSets { train: train_all.select(&train_idx), val: train_all.select(&val_idx), id_test: split.id_subset(&test), ood };
    for (name, set) in [("ID training", &sets.train), ("ID test", &sets.id_test)] {
        if set.is_empty() {
            return Err(TrainError::Setup(format!("the {name} set of this split is empty")));
        }
    }
    Ok(sets)
}
