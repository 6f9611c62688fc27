//! A detector's hyperparameters chosen on a validation OOD set: every candidate scores the ID
//! validation images and the validation OOD images, and the one with the largest AUROC is kept
//! (the first in grid order on a tie, so list the default first). The test sets are not an input
//! here, so they cannot influence the choice. An axis of the grid along which no candidate's
//! scores change at all is reported, not silently kept (OpenOOD's ViM sweep changed nothing, and
//! said nothing).

use crate::detector::{score_sets, Detector, Query, Reference};
use crate::{invalid, Result};

/// The outcome of a search.
#[derive(Clone, Debug, PartialEq)]
pub struct Searched {
    pub chosen: Detector,
    /// The chosen candidate's AUROC, ID validation images positive.
    pub val_auroc: f64,
    /// Every candidate with its validation AUROC, in grid order.
    pub tried: Vec<(Detector, f64)>,
    /// Hyperparameters whose values changed no validation score (for any setting of the others).
    pub no_effect: Vec<String>,
}

/// Searches `candidates` (one detector kind, a grid of its settings) on `id_val` against
/// `ood_val`.
pub fn search(candidates: &[Detector], reference: &Reference, id_val: Query, ood_val: Query) -> Result<Searched> {
    if candidates.is_empty() {
        return invalid("a hyperparameter search needs at least one candidate");
    }
    if id_val.features.is_empty() || ood_val.features.is_empty() {
        return invalid("a hyperparameter search needs ID validation images and validation OOD images");
    }
    let mut tried = Vec::with_capacity(candidates.len());
    let mut scores = Vec::with_capacity(candidates.len());
    for &c in candidates {
        let s = score_sets(c, reference, &[id_val, ood_val])?;
        let auroc =
            oodlab_metrics::ood_metrics(&s[0], &s[1]).map_err(|e| crate::DetectorError::Invalid(format!("{}: {e}", c.settings())))?.auroc;
        tried.push((c, auroc));
        scores.push(s.concat());
    }
    let mut best = 0;
    for (i, (_, auroc)) in tried.iter().enumerate() {
        if *auroc > tried[best].1 {
            best = i;
        }
    }
    Ok(Searched { chosen: tried[best].0, val_auroc: tried[best].1, no_effect: no_effect(candidates, &scores), tried })
}

/// The hyperparameters along which the scores never change: candidates that differ in that
/// setting alone give the same scores, bit for bit, and at least two such candidates exist.
fn no_effect(candidates: &[Detector], scores: &[Vec<f64>]) -> Vec<String> {
    let settings: Vec<Vec<(String, String)>> = candidates
        .iter()
        .map(|c| c.settings().split_whitespace().filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .collect();
    let Some(first) = settings.first() else { return Vec::new() };
    let mut out = Vec::new();
    for (axis, _) in first {
        let others = |i: usize| settings[i].iter().filter(|(k, _)| k != axis).cloned().collect::<Vec<_>>();
        let mut compared = false;
        let mut changes = false;
        for i in 0..candidates.len() {
            for j in i + 1..candidates.len() {
                if others(i) == others(j) && settings[i] != settings[j] {
                    compared = true;
                    changes |= scores[i] != scores[j];
                }
            }
        }
        if compared && !changes {
            out.push(axis.clone());
        }
    }
    out
}
