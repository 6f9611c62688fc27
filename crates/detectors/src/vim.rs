//! ViM (Wang et al., CVPR 2022; OpenOOD `vim_postprocessor.py`): the energy minus a "virtual
//! logit", the norm of the feature's component outside the principal subspace of the ID training
//! features, scaled to the size of the training logits.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::linalg::{covariance, project, project_map};
use crate::logits::logsumexp;
use crate::{invalid, Linear, Result, Rows};

/// ViM's default principal dimension for `features` features: OpenOOD's 42, at most half the
/// features (a small network's 8 or 32); and the dimensions searched, those below the features'.
pub(crate) fn default_dim(features: usize) -> usize {
    (features / 2).clamp(1, 42)
}
pub(crate) const DIM_GRID: [usize; 9] = [8, 16, 32, 42, 64, 128, 256, 512, 1024];

#[derive(Clone, Debug)]
pub struct Vim {
    /// The origin: -pinv(W) b, the point whose logits are 0.
    origin: Vec<f64>,
    /// The residual subspace: eigenvectors of all but the `dim` largest eigenvalues (columns).
    residual: DMatrix<f64>,
    alpha: f64,
    last: Linear,
}

impl Vim {
    /// Fits on ID training features: the covariance of (x - origin) about 0 (scikit-learn's
    /// `EmpiricalCovariance(assume_centered=True)`), its eigenvectors by decreasing eigenvalue,
    /// the principal subspace the first `dim`; alpha = mean of the training max-logits over the
    /// mean training virtual-logit norm.
    pub fn fit(train: Rows, last: &Linear, dim: usize) -> Result<Vim> {
        last.check(train)?;
        let d = train.dim();
        if dim == 0 || dim >= d {
            return invalid(format!("ViM's principal dimension must be in 1..{d} (the feature size), got {dim}"));
        }
        let w = DMatrix::from_row_iterator(last.classes(), d, last.weight.iter().map(|&v| v as f64));
        let b = nalgebra::DVector::from_iterator(last.classes(), last.bias.iter().map(|&v| v as f64));
        // NumPy's `pinv` cut-off: singular values below 1e-15 of the largest count as 0.
        let largest = w.singular_values().max();
        let pinv = w.clone().pseudo_inverse(1e-15 * largest).map_err(|e| crate::DetectorError::Invalid(format!("pinv(W): {e}")))?;
        let origin: Vec<f64> = (-(pinv * b)).iter().copied().collect();
        let eig = SymmetricEigen::new(covariance(train, std::slice::from_ref(&origin), |_| 0));
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let residual = DMatrix::from_columns(&order[dim..].iter().map(|&k| eig.eigenvectors.column(k).into_owned()).collect::<Vec<_>>());
        let mut vim = Vim { origin, residual, alpha: 1.0, last: last.clone() };
        let (logits, norms) = vim.parts(train);
        let max_logits: f64 = logits.iter().map(|z| z.iter().copied().fold(f64::NEG_INFINITY, f64::max)).sum();
        vim.alpha = max_logits / norms.iter().sum::<f64>();
        Ok(vim)
    }

    /// The logits of every feature vector and ‖(x - origin) · residual‖, by blocked products.
    fn parts(&self, features: Rows) -> (Vec<Vec<f64>>, Vec<f64>) {
        let d = features.dim();
        let wt = DMatrix::from_row_iterator(self.last.classes(), d, self.last.weight.iter().map(|&v| v as f64)).transpose();
        let logits = project(features, &vec![0.0; d], &wt)
            .into_iter()
            .map(|z| z.iter().zip(&self.last.bias).map(|(z, &b)| z + b as f64).collect())
            .collect();
        let norms = project_map(features, &self.origin, &self.residual, |r| r.iter().map(|v| v * v).sum::<f64>().sqrt());
        (logits, norms)
    }

    /// energy(x) - alpha · ‖(x - origin) · residual‖.
    pub fn scores(&self, features: Rows) -> Result<Vec<f64>> {
        self.last.check(features)?;
        let (logits, norms) = self.parts(features);
        Ok(logits.iter().zip(norms).map(|(z, n)| logsumexp(z) - self.alpha * n).collect())
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}
