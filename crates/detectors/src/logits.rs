//! GEN, a score of logits; logsumexp (the energy the shaping detectors and ViM end with); and the
//! last linear layer that maps features to logits. MSP, MaxLogit and Energy themselves are scored
//! at evaluation (crates/train/src/evaluate.rs).

use crate::{invalid, Result, Rows};

/// GEN's default (gamma, M) and the values searched (OpenOOD v1.5's sweep).
pub(crate) const GEN_DEFAULT: (f64, usize) = (0.1, 100);
pub(crate) const GEN_GAMMAS: [f64; 7] = [0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0];
pub(crate) const GEN_MS: [usize; 6] = [10, 50, 100, 200, 500, 1000];

/// The network's last layer: logits = W x + b, with W `classes` rows of `dim` values.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub dim: usize,
}

impl Linear {
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, dim: usize) -> Result<Linear> {
        if dim == 0 || weight.len() != bias.len() * dim || bias.is_empty() {
            return invalid(format!(
                "a last layer of {} weights and {} biases does not map {dim} features to logits",
                weight.len(),
                bias.len()
            ));
        }
        Ok(Linear { weight, bias, dim })
    }

    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    /// The logits of one feature vector, in f64.
    pub fn logits(&self, x: &[f32]) -> Vec<f64> {
        self.logits64(&x.iter().map(|&v| v as f64).collect::<Vec<_>>())
    }

    /// The logits of a feature vector given in f64 (a reshaped one).
    pub fn logits64(&self, x: &[f64]) -> Vec<f64> {
        self.weight
            .chunks_exact(self.dim)
            .zip(&self.bias)
            .map(|(w, &b)| w.iter().zip(x).map(|(&w, &x)| w as f64 * x).sum::<f64>() + b as f64)
            .collect()
    }

    pub(crate) fn check(&self, features: Rows) -> Result<()> {
        if features.dim() != self.dim {
            return invalid(format!("features of {} values, but the last layer takes {}", features.dim(), self.dim));
        }
        Ok(())
    }
}

/// log Σ exp(z), stable.
pub(crate) fn logsumexp(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// GEN (Liu et al., CVPR 2023; OpenOOD `gen_postprocessor.py`): minus the generalized entropy
/// Σ p^γ (1 - p)^γ over the `m` largest softmax probabilities (all of them when `m` is at least
/// the number of classes).
pub fn gen(logits: Rows, gamma: f64, m: usize) -> Result<Vec<f64>> {
    if !(gamma > 0.0 && gamma.is_finite()) || m == 0 {
        return invalid(format!("GEN needs gamma > 0 and M >= 1, got gamma {gamma} and M {m}"));
    }
    Ok(logits
        .iter()
        .map(|z| {
            let z: Vec<f64> = z.iter().map(|&v| v as f64).collect();
            let lse = logsumexp(&z);
            let mut p: Vec<f64> = z.iter().map(|v| (v - lse).exp()).collect();
            p.sort_by(|a, b| b.total_cmp(a));
            -p.iter().take(m).map(|&p| p.powf(gamma) * (1.0 - p).powf(gamma)).sum::<f64>()
        })
        .collect())
}
