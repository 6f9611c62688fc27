//! The linear algebra of the Gaussian detectors and ViM, in f64 over nalgebra: means,
//! covariances, and the pseudo-inverse of a symmetric matrix as SciPy's `pinvh` makes it.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::Rows;

/// Rows as an f64 matrix (n × dim).
pub(crate) fn matrix(rows: Rows) -> DMatrix<f64> {
    DMatrix::from_row_iterator(rows.len(), rows.dim(), rows.iter().flatten().map(|&v| v as f64))
}

/// The column means of `x`.
pub(crate) fn mean(x: &DMatrix<f64>) -> Vec<f64> {
    (0..x.ncols()).map(|j| x.column(j).sum() / x.nrows() as f64).collect()
}

/// The biased covariance (divided by n) of the rows of `x` around `center`, as scikit-learn's
/// `empirical_covariance` (with `assume_centered`, around 0 after subtracting `center`).
pub(crate) fn covariance(x: &DMatrix<f64>, center: &[f64]) -> DMatrix<f64> {
    let mut c = x.clone();
    for mut row in c.row_iter_mut() {
        for (v, m) in row.iter_mut().zip(center) {
            *v -= m;
        }
    }
    (c.transpose() * &c) / x.nrows() as f64
}

/// The pseudo-inverse of a symmetric matrix, as `scipy.linalg.pinvh` with its default
/// tolerance: eigenvalues of magnitude at most `max(|λ|) · n · ε` count as 0, so a
/// rank-deficient covariance gives finite scores over the subspace it spans.
pub(crate) fn pinvh(a: &DMatrix<f64>) -> DMatrix<f64> {
    let n = a.nrows();
    let eig = SymmetricEigen::new(a.clone());
    let largest = eig.eigenvalues.iter().fold(0f64, |m, v| m.max(v.abs()));
    let cutoff = largest * n as f64 * f64::EPSILON;
    let mut inv = DMatrix::zeros(n, n);
    for (k, &l) in eig.eigenvalues.iter().enumerate() {
        if l.abs() > cutoff {
            let v = eig.eigenvectors.column(k);
            inv += (v * v.transpose()) / l;
        }
    }
    inv
}

/// (x - m)ᵀ P (x - m).
pub(crate) fn quadratic(p: &DMatrix<f64>, x: &[f32], m: &[f64]) -> f64 {
    let d: Vec<f64> = x.iter().zip(m).map(|(&x, m)| x as f64 - m).collect();
    let mut total = 0.0;
    for (i, di) in d.iter().enumerate() {
        let row: f64 = p.row(i).iter().zip(&d).map(|(p, dj)| p * dj).sum();
        total += di * row;
    }
    total
}
