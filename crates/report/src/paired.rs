//! Paired comparison of two rows over matched (seed, split) cells.

use oodlab_metrics::stats::{bootstrap_mean_ci, wilcoxon, Wilcoxon};
use serde::Serialize;

use crate::{values_by_key, CompareInput};

/// Row `a` against row `b` on one column: differences `a − b` over matched cells.
#[derive(Debug, Clone, Serialize)]
pub struct PairedComparison {
    pub a: String,
    pub b: String,
    pub column: String,
    /// Matched cells.
    pub n: usize,
    pub mean_diff: f64,
    /// 95% percentile bootstrap interval of the mean difference (10,000 resamples, seeded).
    pub ci95: (f64, f64),
    /// Two-sided Wilcoxon signed-rank test of the differences.
    pub wilcoxon: Option<Wilcoxon>,
    /// Cells where `a` is better, equal, worse than `b` (direction of the metric).
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
}

/// Bootstrap resamples and seed: fixed so that a table is the same every time it is made.
pub const RESAMPLES: usize = 10_000;
pub const SEED: u64 = 0;

/// `a` against `b` on every column where both have matched cells.
pub fn paired(input: &CompareInput, a: &str, b: &str) -> Vec<PairedComparison> {
    let (columns, by_key) = values_by_key(input);
    let mut out = Vec::new();
    for c in &columns {
        let (Some(va), Some(vb)) = (by_key.get(&(a.to_string(), c.name.clone())), by_key.get(&(b.to_string(), c.name.clone()))) else {
            continue;
        };
        let pairs: Vec<(f64, f64)> = va.iter().filter_map(|(k, x)| vb.get(k).map(|y| (*x, *y))).collect();
        if pairs.is_empty() {
            continue;
        }
        let d: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
        let wins = pairs.iter().filter(|(x, y)| input.metric.better(*x, *y)).count();
        let ties = pairs.iter().filter(|(x, y)| x == y).count();
        out.push(PairedComparison {
            a: a.to_string(),
            b: b.to_string(),
            column: c.name.clone(),
            n: d.len(),
            mean_diff: d.iter().sum::<f64>() / d.len() as f64,
            ci95: bootstrap_mean_ci(&d, RESAMPLES, 0.05, SEED),
            wilcoxon: wilcoxon(&d),
            wins,
            ties,
            losses: d.len() - wins - ties,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metric, Observation};

    #[test]
    fn wins_ties_losses_follow_the_metric_direction() {
        let o =
            |row: &str, seed: u64, v: f64| Observation { row: row.into(), column: "mnist".into(), near: false, key: (seed, 0), value: v };
        let observations =
            vec![o("a", 0, 0.2), o("a", 1, 0.3), o("a", 2, 0.5), o("b", 0, 0.3), o("b", 1, 0.3), o("b", 2, 0.4), o("b", 3, 0.9)];
        let input = CompareInput {
            metric: Metric::Fpr95,
            observations,
            runs: vec![],
            baseline: None,
            alpha: 0.05,
            flagged: Default::default(),
            budgets: Default::default(),
        };
        let p = &paired(&input, "a", "b")[0];
        // Seed 3 has no match. Lower FPR is better: seed 0 a wins, seed 1 tie, seed 2 a loses.
        assert_eq!((p.n, p.wins, p.ties, p.losses), (3, 1, 1, 1));
        assert!((p.mean_diff - 0.0).abs() < 1e-12);
        assert!(p.ci95.0 <= p.mean_diff && p.mean_diff <= p.ci95.1);
    }
}
