//! Post-hoc OOD detectors over a trained network's penultimate features and logits: pure
//! functions, no network and no candle, so that they run on the features a run saved once
//! (issue #19). Each follows OpenOOD v1.5's postprocessor of the same name (Jingkang50/OpenOOD,
//! `openood/postprocessors/`), written as the formula it computes; `docs/detectors.md` gives
//! each formula, its reference and its hyperparameters. Larger scores mean more ID-like, as for
//! MSP, MaxLogit and Energy.
//!
//! Statistics (means, covariances, their pseudo-inverses and eigenvectors) are computed in f64
//! from the f32 features. Every detector is checked against a NumPy port of its reference
//! (`scripts/reference/detectors_numpy.py`, fixtures in `tests/fixtures/`).
//!
//! ```
//! use oodlab_detectors::{gen, Rows};
//! // Two samples, three classes: a confident one and a uniform one.
//! let logits = [9.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let s = gen(Rows::new(&logits, 3).unwrap(), 0.1, 100).unwrap();
//! assert!(s[0] > s[1]); // the confident sample is more ID-like
//! ```

mod detector;
mod gaussian;
mod knn;
mod linalg;
mod logits;
mod search;
mod shaping;
mod vim;

use thiserror::Error;

pub use detector::{score_sets, Detector, Query, Reference, NAMES};
pub use gaussian::{mahalanobis, rmds, ClassGaussians};
pub use knn::{knn, nearest};
pub use logits::{gen, Linear};
pub use search::{search, Searched};
pub use shaping::{ash, percentile, react, Ash};
pub use vim::Vim;

#[derive(Debug, Error, PartialEq)]
pub enum DetectorError {
    /// Inputs whose shapes or parameters do not fit together; the message says which.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DetectorError>;

fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(DetectorError::Invalid(message.into()))
}

/// A row-major matrix of f32 values: one row per sample (a feature vector or a logit vector).
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    values: &'a [f32],
    dim: usize,
}

impl<'a> Rows<'a> {
    /// `values` holds whole rows of `dim` values each.
    pub fn new(values: &'a [f32], dim: usize) -> Result<Rows<'a>> {
        if dim == 0 || values.len() % dim != 0 {
            return invalid(format!("{} values are not whole rows of {dim}", values.len()));
        }
        Ok(Rows { values, dim })
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Every value, row after row.
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [f32]> + 'a {
        self.values.chunks_exact(self.dim)
    }
}
