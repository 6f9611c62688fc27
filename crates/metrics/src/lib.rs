//! OOD detection metrics, pure functions, following the OpenOOD v1.5 conventions.
//!
//! Scores are "larger = more ID-like". OOD is the positive class and the detector's statistic is
//! `-score`. [`ood_metrics`] gives AUROC, FPR@95, AUPR-In and AUPR-Out in one O(n log n) pass.
//!
//! ```
//! let m = oodlab_metrics::ood_metrics(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.75]).unwrap();
//! assert!((m.auroc - 8.0 / 9.0).abs() < 1e-12);
//! ```

pub mod analysis;
mod curve;
pub mod stats;
mod tnr95;

pub use curve::{ood_metrics, roc_curve, MetricsError, OodMetrics};
pub use tnr95::{tnr_at_tpr95, tnr_at_tpr95_subsets};

/// Fraction of `predicted == labels`, the ID accuracy of a run.
pub fn accuracy(predicted: &[u32], labels: &[u32]) -> f64 {
    assert_eq!(predicted.len(), labels.len(), "one prediction per label");
    if labels.is_empty() {
        return f64::NAN;
    }
    let hits = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    hits as f64 / labels.len() as f64
}
