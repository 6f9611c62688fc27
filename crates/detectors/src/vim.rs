//! ViM (Wang et al., CVPR 2022; OpenOOD `vim_postprocessor.py`): the energy minus a "virtual
//! logit", the norm of the feature's component outside the principal subspace of the ID training
//! features, scaled to the size of the training logits.

use nalgebra::{DMatrix, SymmetricEigen};
use rayon::prelude::*;

use crate::linalg::{covariance, matrix};
use crate::logits::logsumexp;
use crate::{invalid, Linear, Result, Rows};

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
        let x = matrix(train);
        let eig = SymmetricEigen::new(covariance(&x, &origin));
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let residual = DMatrix::from_columns(&order[dim..].iter().map(|&k| eig.eigenvectors.column(k).into_owned()).collect::<Vec<_>>());
        let mut vim = Vim { origin, residual, alpha: 1.0, last: last.clone() };
        let (mut max_logits, mut norms) = (0.0, 0.0);
        for row in train.iter() {
            max_logits += last.logits(row).into_iter().fold(f64::NEG_INFINITY, f64::max);
            norms += vim.virtual_norm(row);
        }
        vim.alpha = max_logits / norms;
        Ok(vim)
    }

    /// ‖(x - origin) · residual‖.
    fn virtual_norm(&self, x: &[f32]) -> f64 {
        let centred: Vec<f64> = x.iter().zip(&self.origin).map(|(&x, o)| x as f64 - o).collect();
        self.residual.column_iter().map(|v| v.iter().zip(&centred).map(|(a, b)| a * b).sum::<f64>().powi(2)).sum::<f64>().sqrt()
    }

    /// energy(x) - alpha · ‖(x - origin) · residual‖.
    pub fn scores(&self, features: Rows) -> Result<Vec<f64>> {
        self.last.check(features)?;
        Ok((0..features.len())
            .into_par_iter()
            .map(|i| {
                let x = features.row(i);
                logsumexp(&self.last.logits(x)) - self.alpha * self.virtual_norm(x)
            })
            .collect())
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}
