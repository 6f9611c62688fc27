//! KNN (Sun et al., ICML 2022; OpenOOD `knn_postprocessor.py`): minus the squared Euclidean
//! distance from the L2-normalized query feature to its k-th nearest L2-normalized ID training
//! feature (faiss's `IndexFlatL2` there, which returns squared distances).
//!
//! Exact, by blocked f32 matrix products as faiss's flat index does: for unit vectors
//! ‖q - t‖² = ‖q‖² + ‖t‖² - 2 q·t, the dot products of a block of queries with a tile of the
//! training features in one product, the k smallest distances kept per query. The same scan
//! gives each query its nearest training row ([`nearest`]): the audit's near duplicates by
//! features (issue #34).

use rayon::prelude::*;

use crate::{invalid, Result, Rows};

/// OpenOOD v1.5's default k, and the values searched (its sweep, widened).
pub(crate) const DEFAULT_K: usize = 50;
pub(crate) const K_GRID: [usize; 7] = [1, 5, 10, 20, 50, 100, 200];

/// Queries per task, training features per product: a block's distances to a tile (512 × 1024
/// f32, 2 MiB) stay in the core's cache while they are scanned, and the tile's rows are packed
/// once per block. Measured on 50,000 × 512 against 6,000 queries (AMD EPYC Zen 4, 2 cores):
/// 256 queries a block 4.6 s, 512 3.8 s, 768 and 1,024 3.5 s (fewer tasks to share out);
/// tiles of 512 to 4,096 within noise.
const QUERIES: usize = 512;
const TILE: usize = 1024;

/// Rows `range` of `rows`, each divided by its norm (computed in f64), as f32 row-major; a zero
/// row stays zero (distance 1 to every unit vector) rather than NaN. With each row's squared
/// norm after rounding.
fn normalized(rows: Rows, range: std::ops::Range<usize>) -> (Vec<f32>, Vec<f64>) {
    let d = rows.dim();
    let mut m = Vec::with_capacity(range.len() * d);
    let mut norms = Vec::with_capacity(range.len());
    for i in range {
        let x = rows.row(i);
        let norm = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let mut n2 = 0.0;
        for &v in x {
            let u = (v as f64 * inv) as f32;
            m.push(u);
            n2 += u as f64 * u as f64;
        }
        norms.push(n2);
    }
    (m, norms)
}

/// `dst` (m × n, row-major) = `a` (m × d, row-major) · `b`ᵀ (`b` n × d, row-major), with the
/// `gemm` crate's f32 kernels (AVX-512 or AVX2, chosen at run time) on this thread: the scan runs
/// one block per rayon task already.
fn dots(a: &[f32], b: &[f32], d: usize, dst: &mut [f32]) {
    let (m, n) = (a.len() / d, b.len() / d);
    assert_eq!(dst.len(), m * n, "a product of {m} × {d} by {d} × {n}");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `a` and `b` hold m × d and n × d values row-major: element (i, p) of `a` is at
    // i d + p (column stride 1, row stride d), element (p, j) of bᵀ is b's (j, p) at j d + p
    // (column stride d, row stride 1); `dst` holds m × n, (i, j) at i n + j, and aliases neither.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            d,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            d as isize,
            b.as_ptr(),
            d as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Every query against every training row: per block of queries (one rayon task each), per tile
/// of training rows, `visit` is handed the query's state, the tile's first row and a
/// [`Distances`] to the tile's rows; `end` turns each query's state into its result, in the
/// queries' order.
fn scan<S, R: Send>(
    train: Rows,
    queries: Rows,
    new: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, usize, Distances) + Sync,
    end: impl Fn(S) -> R + Sync,
) -> Vec<R> {
    let d = train.dim();
    let tiles: Vec<(usize, Vec<f32>, Vec<f64>, f64)> = (0..train.len())
        .step_by(TILE)
        .map(|s| {
            let (m, n) = normalized(train, s..(s + TILE).min(train.len()));
            let least = n.iter().copied().fold(f64::INFINITY, f64::min);
            (s, m, n, least)
        })
        .collect();
    let starts: Vec<usize> = (0..queries.len()).step_by(QUERIES).collect();
    starts
        .into_par_iter()
        .flat_map_iter(|s| {
            let (q, qn) = normalized(queries, s..(s + QUERIES).min(queries.len()));
            let mut states: Vec<S> = qn.iter().map(|_| new()).collect();
            let mut block = vec![0f32; qn.len() * TILE];
            for (start, t, tn, tn_min) in &tiles {
                let n = tn.len();
                let block = &mut block[..qn.len() * n];
                dots(&q, t, d, block);
                for ((state, dots), &qn) in states.iter_mut().zip(block.chunks_exact(n)).zip(&qn) {
                    visit(state, *start, Distances { dots, qn, tn, tn_min: *tn_min });
                }
            }
            states.into_iter().map(&end).collect::<Vec<R>>()
        })
        .collect()
}

/// One query's squared distances to a tile's rows: f32 dot products (as faiss's), summed with
/// the squared norms in f64 when read, so that a distance near 0 (a near duplicate) keeps its
/// digits.
struct Distances<'a> {
    dots: &'a [f32],
    qn: f64,
    tn: &'a [f64],
    /// The smallest of `tn`.
    tn_min: f64,
}

impl Distances<'_> {
    /// Row `j`'s distance.
    fn at(&self, j: usize) -> f64 {
        (self.qn + self.tn[j] - 2.0 * self.dots[j] as f64).max(0.0)
    }

    /// An f32 floor under which no row's dot product can make a distance below `bound`: a row
    /// with `dot <= floor` has qn + tn - 2 dot >= qn + tn_min - 2 floor > bound (the 1e-6 taken
    /// off covers the f32 rounding of the floor, ≤ 2.4e-7 for the |floor| ≤ 2 of unit vectors,
    /// and the f64 rounding of the distance, ~1e-15).
    fn floor(&self, bound: f64) -> f32 {
        ((self.qn + self.tn_min - bound) / 2.0 - 1e-6) as f32
    }

    /// Hands `keep` each row (its index in the tile, its distance) closer than `bound`, in order;
    /// `keep` returns the bound from then on. Rows whose dot product is at or under the bound's
    /// [`Distances::floor`] are skipped without their f64 distance — exactly those the distance
    /// would not keep — 16 at a time by a branch-free comparison the compiler vectorizes: after
    /// the first tiles nearly every row is.
    fn closer(&self, mut bound: f64, mut keep: impl FnMut(usize, f64) -> f64) {
        let mut floor = self.floor(bound);
        for (c, chunk) in self.dots.chunks(CHUNK).enumerate() {
            if !chunk.iter().fold(false, |any, &dot| any | (dot > floor)) {
                continue;
            }
            for j in c * CHUNK..c * CHUNK + chunk.len() {
                let d = self.at(j);
                if d < bound {
                    bound = keep(j, d);
                    floor = self.floor(bound);
                }
            }
        }
    }
}

/// Rows compared against a floor at once.
const CHUNK: usize = 16;

pub fn knn(train: Rows, queries: Rows, k: usize) -> Result<Vec<f64>> {
    if k == 0 || k > train.len() {
        return invalid(format!("KNN needs 1 <= k <= {} (the training features), got k = {k}", train.len()));
    }
    same_dim(train, queries)?;
    // Per query: candidate distances, and a bound (the k-th smallest kept so far) that a new
    // distance must beat to be kept at all.
    Ok(scan(
        train,
        queries,
        || (Vec::with_capacity(2 * k + 1), f64::INFINITY),
        |(kept, bound): &mut (Vec<f64>, f64), _, row| {
            row.closer(*bound, |_, d| {
                kept.push(d);
                if kept.len() == 2 * k {
                    kept.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
                    kept.truncate(k);
                    *bound = kept[k - 1];
                }
                *bound
            })
        },
        |(mut kept, _)| {
            kept.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
            -kept[k - 1]
        },
    ))
}

/// For each query, its nearest training row (the first of equals) and their squared distance
/// once both are L2-normalized (2 − 2 cos: the cosine is 1 − d / 2). The scan of [`knn`] with k
/// = 1 that keeps the row's index.
pub fn nearest(train: Rows, queries: Rows) -> Result<Vec<(usize, f64)>> {
    if train.is_empty() {
        return invalid("the nearest training row of a query needs at least one training row");
    }
    same_dim(train, queries)?;
    Ok(scan(
        train,
        queries,
        || (0usize, f64::INFINITY),
        |(best, bound): &mut (usize, f64), start, row| {
            row.closer(*bound, |j, d| {
                (*best, *bound) = (start + j, d);
                d
            })
        },
        |(best, d)| (best, d),
    ))
}

fn same_dim(train: Rows, queries: Rows) -> Result<()> {
    if train.dim() != queries.dim() {
        return invalid(format!("training features of {} values but queries of {}", train.dim(), queries.dim()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every distance of the scan kept, then the k-th smallest: what [`knn`] computed before the
    /// floor skipped rows, on the same f32 products and f64 sums.
    fn keep_all(train: Rows, queries: Rows, k: usize) -> Vec<f64> {
        scan(
            train,
            queries,
            Vec::new,
            |all: &mut Vec<f64>, _, row| all.extend((0..row.dots.len()).map(|j| row.at(j))),
            |mut all| {
                all.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
                -all[k - 1]
            },
        )
    }

    #[test]
    fn the_floor_skips_only_rows_that_could_not_be_kept() {
        // Rows that tie and nearly tie: each training row repeated 3 times, some scaled (the same
        // unit vector, norms that differ in the last bits), a zero row, and queries that are
        // training rows (distance 0, where the floor is closest to the dots) or near them.
        let d = 16;
        let base: Vec<f32> = (0..700 * d).map(|i| ((i as f64 * 0.37).sin() + 0.5 * (i as f64 * 0.011).cos()) as f32).collect();
        let mut train = Vec::new();
        for (r, row) in base.chunks(d).enumerate() {
            for copy in 0..3 {
                let scale = [1.0f32, 3.0, 0.1][(r + copy) % 3];
                train.extend(row.iter().map(|&v| v * scale));
            }
        }
        train.extend(std::iter::repeat_n(0.0f32, d));
        let mut queries: Vec<f32> = train[..300 * d].to_vec();
        queries.extend(train[300 * d..600 * d].iter().enumerate().map(|(i, &v)| v + 1e-4 * ((i % 7) as f32 - 3.0)));
        queries.extend(std::iter::repeat_n(0.0f32, d));
        let (t, q) = (Rows::new(&train, d).unwrap(), Rows::new(&queries, d).unwrap());
        assert!(t.len() > 2 * TILE && q.len() > QUERIES, "several tiles and blocks");
        for k in [1, 2, 3, 4, 50, 200] {
            let (got, want) = (knn(t, q, k).unwrap(), keep_all(t, q, k));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "k {k}, query {i}: {g} against {w} keeping every distance");
            }
        }
        // The nearest row: the first of the smallest distances, by every distance.
        let all = scan(
            t,
            q,
            Vec::new,
            |all: &mut Vec<(usize, f64)>, start, row| all.extend((0..row.dots.len()).map(|j| (start + j, row.at(j)))),
            |all| all.into_iter().fold((0, f64::INFINITY), |best, (j, d)| if d < best.1 { (j, d) } else { best }),
        );
        for (i, (g, w)) in nearest(t, q).unwrap().iter().zip(&all).enumerate() {
            assert!(g.0 == w.0 && g.1.to_bits() == w.1.to_bits(), "query {i}: {g:?} against {w:?} by every distance");
        }
    }
}
