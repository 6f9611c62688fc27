//! The linear algebra of the Gaussian detectors and ViM, in f64: means, covariances, the
//! pseudo-inverse of a symmetric matrix as SciPy's `pinvh` makes it (kept as a whitening), and
//! products with the `gemm` crate.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::Rows;

/// The mean of the rows of each group (`group(i)` in 0..groups), summed in f64 in row order.
pub(crate) fn group_means(rows: Rows, groups: usize, group: impl Fn(usize) -> usize) -> Vec<(Vec<f64>, usize)> {
    let mut sums = vec![(vec![0f64; rows.dim()], 0usize); groups];
    for (i, x) in rows.iter().enumerate() {
        let (sum, n) = &mut sums[group(i)];
        for (s, &v) in sum.iter_mut().zip(x) {
            *s += v as f64;
        }
        *n += 1;
    }
    for (sum, n) in &mut sums {
        sum.iter_mut().for_each(|s| *s /= (*n).max(1) as f64);
    }
    sums
}

/// The mean of all rows.
pub(crate) fn mean(rows: Rows) -> Vec<f64> {
    group_means(rows, 1, |_| 0).swap_remove(0).0
}

/// The biased covariance (divided by n) of the rows x_i around `centers[group(i)]`: scikit-learn's
/// `empirical_covariance` of x_i - center (with `assume_centered`). Blocks of rows are made into f64 matrices and
/// multiplied in parallel, their products added in block order, so the result does not depend
/// on the number of threads; no copy of all the rows is made.
pub(crate) fn covariance(rows: Rows, centers: &[Vec<f64>], group: impl Fn(usize) -> usize + Sync) -> DMatrix<f64> {
    use rayon::prelude::*;
    let (n, d) = (rows.len(), rows.dim());
    let starts: Vec<usize> = (0..n).step_by(COVARIANCE_ROWS).collect();
    let parts: Vec<DMatrix<f64>> = starts
        .into_par_iter()
        .map(|s| {
            let end = (s + COVARIANCE_ROWS).min(n);
            // The block transposed (d × rows), built directly: each row a contiguous column.
            let ct = DMatrix::from_iterator(
                d,
                end - s,
                (s..end).flat_map(|i| rows.row(i).iter().zip(&centers[group(i)]).map(|(&x, c)| x as f64 - c)),
            );
            product(&ct, &ct.transpose())
        })
        .collect();
    let mut sum = DMatrix::zeros(d, d);
    for p in &parts {
        sum += p;
    }
    sum / n as f64
}

/// Rows per partial product of [`covariance`].
const COVARIANCE_ROWS: usize = 4096;

/// Rows per block of the products below: each block is one rayon task and one matrix product.
const BLOCK: usize = 512;

/// f((x - center) · a) for every row x, in parallel blocks of rows (each block one product).
pub(crate) fn project_map<T: Send>(rows: Rows, center: &[f64], a: &DMatrix<f64>, f: impl Fn(&[f64]) -> T + Sync) -> Vec<T> {
    use rayon::prelude::*;
    let d = rows.dim();
    let starts: Vec<usize> = (0..rows.len()).step_by(BLOCK).collect();
    starts
        .into_par_iter()
        .flat_map_iter(|start| {
            let end = (start + BLOCK).min(rows.len());
            let block = DMatrix::from_row_iterator(
                end - start,
                d,
                (start..end).flat_map(|i| rows.row(i).iter().zip(center).map(|(&x, c)| x as f64 - c)),
            );
            // Transposed, so that each projected row is one contiguous column.
            let p = product(&block, a).transpose();
            p.column_iter().map(|c| f(c.as_slice())).collect::<Vec<_>>()
        })
        .collect()
}

/// (x - center) · a for every row x.
pub(crate) fn project(rows: Rows, center: &[f64], a: &DMatrix<f64>) -> Vec<Vec<f64>> {
    project_map(rows, center, a, |z| z.to_vec())
}

/// A whitening of the pseudo-inverse of symmetric `a`: the matrix W (n × r) with
/// W Wᵀ = pinvh(a), from the eigenvectors of the eigenvalues above `pinvh`'s cut-off, each
/// divided by the square root of its eigenvalue; r is the rank. (x - m)ᵀ pinvh(a) (x - m) is then
/// ‖(x - m) W‖², one product per sample instead of one quadratic form per sample and class.
pub(crate) fn whitening(a: &DMatrix<f64>) -> DMatrix<f64> {
    let n = a.nrows();
    let eig = SymmetricEigen::new(a.clone());
    let largest = eig.eigenvalues.iter().fold(0f64, |m, v| m.max(v.abs()));
    let cutoff = largest * n as f64 * f64::EPSILON;
    let columns: Vec<_> = eig
        .eigenvalues
        .iter()
        .enumerate()
        // A covariance has no negative eigenvalues but rounding's; those count as 0 as well.
        .filter(|(_, &l)| l > cutoff)
        .map(|(k, &l)| eig.eigenvectors.column(k) / l.sqrt())
        .collect();
    if columns.is_empty() {
        return DMatrix::zeros(n, 0);
    }
    DMatrix::from_columns(&columns)
}

/// a · b with the `gemm` crate (its AVX-512 or AVX2 kernels, chosen at run time, on all of
/// rayon's threads), where nalgebra's own product (matrixmultiply) has no AVX-512 kernels and
/// runs on one thread: the fits' covariances and projections are such products.
pub(crate) fn product(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    let (m, k) = a.shape();
    assert_eq!(k, b.nrows(), "product of {}x{k} by {}x{}", m, b.nrows(), b.ncols());
    let n = b.ncols();
    let mut dst = DMatrix::<f64>::zeros(m, n);
    if m == 0 || n == 0 || k == 0 {
        return dst;
    }
    let threads = rayon::current_num_threads();
    // SAFETY: nalgebra's matrices are column-major and contiguous: element (i, j) of an r-row
    // matrix is at i + j r, which the column stride r and row stride 1 describe; `dst` is a
    // fresh matrix, aliasing neither input, and every size matches its buffer.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            m as isize,
            1,
            false,
            a.as_ptr(),
            m as isize,
            1,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None },
        );
    }
    dst
}
