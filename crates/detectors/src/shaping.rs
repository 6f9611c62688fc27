//! Detectors that reshape the penultimate features before the last layer, then score the
//! logits by energy: ReAct (clip) and ASH (prune and rescale).

use rayon::prelude::*;

use crate::logits::logsumexp;
use crate::{invalid, Linear, Result, Rows};

/// ReAct's default clipping percentile and the percentiles searched (OpenOOD v1.5's sweep).
pub(crate) const REACT_PERCENTILE: f64 = 90.0;
pub(crate) const REACT_GRID: [f64; 4] = [85.0, 90.0, 95.0, 99.0];
/// ASH-B's default pruning percentile and the percentiles searched (OpenOOD v1.5's sweep).
pub(crate) const ASH_PERCENTILE: f64 = 90.0;
pub(crate) const ASH_GRID: [f64; 7] = [65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0];

/// The `q`-th percentile (0–100) of `values`, interpolated linearly between the two nearest
/// ranks as NumPy's `np.percentile` (method "linear").
pub fn percentile(values: &[f32], q: f64) -> Result<f64> {
    if values.is_empty() || !(0.0..=100.0).contains(&q) {
        return invalid(format!("a percentile needs values and 0 <= q <= 100, got {} values and q = {q}", values.len()));
    }
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(oodlab_metrics::stats::quantile_sorted(&v, q / 100.0))
}

/// ReAct (Sun et al., NeurIPS 2021; OpenOOD `react_postprocessor.py`): features clipped from
/// above at `threshold` (in OpenOOD the `percentile` of all ID activations: [`percentile`]), then
/// the energy of the logits.
pub fn react(features: Rows, last: &Linear, threshold: f64) -> Result<Vec<f64>> {
    last.check(features)?;
    Ok((0..features.len())
        .into_par_iter()
        .map(|i| {
            let x: Vec<f64> = features.row(i).iter().map(|&v| (v as f64).min(threshold)).collect();
            logsumexp(&last.logits64(&x))
        })
        .collect())
}

/// ASH's variants (Djurisic et al., ICLR 2023; OpenOOD `networks/ash_net.py`), applied to each
/// feature vector with `percentile` p: keep the k = n - round(n p / 100) largest values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ash {
    /// The kept values all set to the vector's sum over k, the rest 0 (OpenOOD's default, `ash_b`).
    B { percentile: f64 },
    /// The kept values unchanged, the rest 0 (`ash_p`).
    P { percentile: f64 },
    /// The kept values unchanged, the rest 0, then all scaled by exp(sum before / sum after)
    /// (`ash_s`).
    S { percentile: f64 },
}

/// The features shaped by ASH, then the energy of the logits. Ties among the k-th largest values
/// keep the lowest indices (torch's `topk` leaves their order unspecified; a ReLU network's
/// features tie at 0 whenever k exceeds the positive values).
pub fn ash(features: Rows, last: &Linear, variant: Ash) -> Result<Vec<f64>> {
    last.check(features)?;
    let (Ash::B { percentile } | Ash::P { percentile } | Ash::S { percentile }) = variant;
    let n = features.dim();
    // NumPy's round: half to even.
    let k = n as i64 - (n as f64 * percentile / 100.0).round_ties_even() as i64;
    if !(0.0..100.0).contains(&percentile) || k < 1 {
        return invalid(format!("ASH needs 0 <= percentile < 100 keeping at least one of {n} features, got {percentile}"));
    }
    let k = k as usize;
    Ok((0..features.len())
        .into_par_iter()
        .map(|i| {
            let x = features.row(i);
            let mut order: Vec<usize> = (0..n).collect();
            // Stable: equal values keep their index order.
            order.sort_by(|&a, &b| x[b].total_cmp(&x[a]));
            let kept = &order[..k];
            let sum: f64 = x.iter().map(|&v| v as f64).sum();
            let mut y = vec![0f32; n];
            match variant {
                Ash::B { .. } => kept.iter().for_each(|&j| y[j] = (sum / k as f64) as f32),
                Ash::P { .. } => kept.iter().for_each(|&j| y[j] = x[j]),
                Ash::S { .. } => {
                    let after: f64 = kept.iter().map(|&j| x[j] as f64).sum();
                    let scale = (sum / after).exp();
                    kept.iter().for_each(|&j| y[j] = (x[j] as f64 * scale) as f32);
                }
            }
            logsumexp(&last.logits(&y))
        })
        .collect())
}
