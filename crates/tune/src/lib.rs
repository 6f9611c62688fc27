//! Hyperparameter search for oodlab's tuning stage (issue #33): a search space over an entry's
//! fields ([`Space`]), the samplers that propose the next trial's values — [`grid`], seeded
//! [`random`] draws and [`tpe`], Optuna's tree-structured Parzen estimator (univariate, its
//! defaults) — and successive halving in its asynchronous form ([`asha`]), which decides which
//! trials go on training from their checkpoints. Pure functions over trials' values and
//! objectives: the scheduler owns the runs, the store keeps the record.
//!
//! Objectives are maximized (an AUROC); a sampler that minimizes sees them negated.
//!
//! ```
//! use oodlab_tune::{Dist, Space};
//! let space = Space::new(vec![
//!     ("method.weight".into(), Dist::Choice(vec![0.5.into(), 1.0.into(), 5.0.into()])),
//!     ("train.optimizer.lr".into(), Dist::LogUniform { low: 1e-3, high: 5e-2 }),
//! ])
//! .unwrap();
//! let first = oodlab_tune::random::draw(&space, 7, 0);
//! assert_eq!(first.len(), 2);
//! assert!(oodlab_tune::grid::points(&space).is_err()); // a range has no grid
//! ```

pub mod asha;
pub mod grid;
mod normal;
pub mod random;
pub mod search;
mod space;
pub mod tpe;

pub use space::{Dist, Point, Space};

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TuneError {
    /// A space or sampler setting that cannot be searched; the message names the field.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, TuneError>;

fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(TuneError::Invalid(message.into()))
}
