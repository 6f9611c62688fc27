//! KNN (Sun et al., ICML 2022; OpenOOD `knn_postprocessor.py`): minus the squared Euclidean
//! distance from the L2-normalized query feature to its k-th nearest L2-normalized ID training
//! feature (faiss's `IndexFlatL2` there, which returns squared distances).
//!
//! Exact, by blocked f32 matrix products as faiss's flat index does: for unit vectors
//! ‖q - t‖² = ‖q‖² + ‖t‖² - 2 q·t, the dot products of a block of queries with a tile of the
//! training features in one product, the k smallest distances kept per query.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::{invalid, Result, Rows};

/// OpenOOD v1.5's default k, and the values searched (its sweep, widened).
pub(crate) const DEFAULT_K: usize = 50;
pub(crate) const K_GRID: [usize; 7] = [1, 5, 10, 20, 50, 100, 200];

/// Queries per task, training features per product.
const QUERIES: usize = 256;
const TILE: usize = 4096;

/// Each row divided by its norm (computed in f64), as f32; a zero row stays zero (distance 1 to
/// every unit vector) rather than NaN. With each row's squared norm after rounding.
fn normalized(rows: Rows, range: std::ops::Range<usize>) -> (DMatrix<f32>, Vec<f64>) {
    let d = rows.dim();
    let mut m = DMatrix::zeros(range.len(), d);
    let mut norms = Vec::with_capacity(range.len());
    for (r, i) in range.enumerate() {
        let x = rows.row(i);
        let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let mut n2 = 0.0;
        for (j, &v) in x.iter().enumerate() {
            let u = (v as f64 * inv) as f32;
            m[(r, j)] = u;
            n2 += u as f64 * u as f64;
        }
        norms.push(n2);
    }
    (m, norms)
}

pub fn knn(train: Rows, queries: Rows, k: usize) -> Result<Vec<f64>> {
    if k == 0 || k > train.len() {
        return invalid(format!("KNN needs 1 <= k <= {} (the training features), got k = {k}", train.len()));
    }
    if train.dim() != queries.dim() {
        return invalid(format!("training features of {} values but queries of {}", train.dim(), queries.dim()));
    }
    // The training features as columns, tile by tile.
    let tiles: Vec<(DMatrix<f32>, Vec<f64>)> = (0..train.len())
        .step_by(TILE)
        .map(|s| {
            let (m, n) = normalized(train, s..(s + TILE).min(train.len()));
            (m.transpose(), n)
        })
        .collect();
    let starts: Vec<usize> = (0..queries.len()).step_by(QUERIES).collect();
    Ok(starts
        .into_par_iter()
        .flat_map_iter(|s| {
            let (q, qn) = normalized(queries, s..(s + QUERIES).min(queries.len()));
            // Per query: candidate distances, and a bound (the k-th smallest kept so far) that a
            // new distance must beat to be kept at all.
            let mut nearest: Vec<(Vec<f64>, f64)> = vec![(Vec::with_capacity(2 * k + 1), f64::INFINITY); q.nrows()];
            for (t, tn) in &tiles {
                // Transposed: each query's dot products one contiguous column.
                let dots = (&q * t).transpose();
                for ((kept, bound), (dots, qn)) in nearest.iter_mut().zip(dots.column_iter().zip(&qn)) {
                    for (&dot, tn) in dots.iter().zip(tn) {
                        let d = (qn + tn - 2.0 * dot as f64).max(0.0);
                        if d < *bound {
                            kept.push(d);
                            if kept.len() == 2 * k {
                                kept.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
                                kept.truncate(k);
                                *bound = kept[k - 1];
                            }
                        }
                    }
                }
            }
            nearest
                .into_iter()
                .map(|(mut kept, _)| {
                    kept.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
                    -kept[k - 1]
                })
                .collect::<Vec<_>>()
        })
        .collect())
}
