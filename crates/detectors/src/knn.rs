//! KNN (Sun et al., ICML 2022; OpenOOD `knn_postprocessor.py`): minus the squared Euclidean
//! distance from the L2-normalized query feature to its k-th nearest L2-normalized ID training
//! feature (faiss's `IndexFlatL2` there, which returns squared distances).

use rayon::prelude::*;

use crate::{invalid, Result, Rows};

fn normalized(x: &[f32]) -> Vec<f64> {
    let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    // A zero vector stays zero (distance 1 to every unit vector) rather than NaN.
    let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    x.iter().map(|&v| v as f64 * inv).collect()
}

/// Exact: every query against every training feature.
pub fn knn(train: Rows, queries: Rows, k: usize) -> Result<Vec<f64>> {
    if k == 0 || k > train.len() {
        return invalid(format!("KNN needs 1 <= k <= {} (the training features), got k = {k}", train.len()));
    }
    if train.dim() != queries.dim() {
        return invalid(format!("training features of {} values but queries of {}", train.dim(), queries.dim()));
    }
    let bank: Vec<Vec<f64>> = train.iter().map(normalized).collect();
    Ok((0..queries.len())
        .into_par_iter()
        .map(|i| {
            let q = normalized(queries.row(i));
            let mut d: Vec<f64> = bank.iter().map(|t| t.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum()).collect();
            let (_, kth, _) = d.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
            -*kth
        })
        .collect())
}
