//! Mahalanobis (MDS) and relative Mahalanobis (RMDS) scores from class-conditional Gaussians
//! with one shared ("tied") covariance, fitted on ID training features.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::linalg::{covariance, matrix, mean, pinvh, quadratic};
use crate::{invalid, Result, Rows};

/// Class means, the precision (pseudo-inverse) of the covariance of the class-centred training
/// features, and the class-agnostic background Gaussian RMDS subtracts.
#[derive(Clone, Debug)]
pub struct ClassGaussians {
    means: Vec<Vec<f64>>,
    precision: DMatrix<f64>,
    whole_mean: Vec<f64>,
    whole_precision: DMatrix<f64>,
}

impl ClassGaussians {
    /// Fits on ID training features and their labels (0..classes). As OpenOOD's
    /// `mds_postprocessor.py` and `rmds_postprocessor.py`: each class centred on its own mean,
    /// their union's empirical covariance (scikit-learn's `EmpiricalCovariance`, biased), its
    /// pseudo-inverse; the background Gaussian is the same over all features uncentred by class.
    pub fn fit(train: Rows, labels: &[usize], classes: usize) -> Result<ClassGaussians> {
        if labels.len() != train.len() {
            return invalid(format!("{} training features but {} labels", train.len(), labels.len()));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= classes) {
            return invalid(format!("label {l} is not one of the {classes} classes"));
        }
        let x = matrix(train);
        let mut means = Vec::with_capacity(classes);
        for c in 0..classes {
            let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
            if rows.is_empty() {
                return invalid(format!("class {c} has no training features: its mean is undefined"));
            }
            means.push(mean(&x.select_rows(&rows)));
        }
        let mut centred = x.clone();
        for (i, mut row) in centred.row_iter_mut().enumerate() {
            for (v, m) in row.iter_mut().zip(&means[labels[i]]) {
                *v -= m;
            }
        }
        let precision = pinvh(&covariance(&centred, &mean(&centred)));
        let whole_mean = mean(&x);
        Ok(ClassGaussians { means, precision, whole_precision: pinvh(&covariance(&x, &whole_mean)), whole_mean })
    }

    fn check(&self, features: Rows) -> Result<()> {
        if features.dim() != self.whole_mean.len() {
            return invalid(format!("features of {} values, but the Gaussians were fitted on {}", features.dim(), self.whole_mean.len()));
        }
        Ok(())
    }

    /// -(x - μ_c)ᵀ P (x - μ_c) for each class c.
    fn class_scores(&self, x: &[f32]) -> Vec<f64> {
        self.means.iter().map(|m| -quadratic(&self.precision, x, m)).collect()
    }
}

fn max(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(f64::NEG_INFINITY, f64::max)
}

/// Mahalanobis score (Lee et al., NeurIPS 2018, without input noise; OpenOOD `mds`): the largest
/// over classes of minus the squared Mahalanobis distance to the class mean.
pub fn mahalanobis(g: &ClassGaussians, features: Rows) -> Result<Vec<f64>> {
    g.check(features)?;
    Ok((0..features.len()).into_par_iter().map(|i| max(g.class_scores(features.row(i)).into_iter())).collect())
}

/// Relative Mahalanobis score (Ren et al., 2021; OpenOOD `rmds`): the class scores minus the
/// background's (the squared distance under the Gaussian of all training features), largest over
/// classes.
pub fn rmds(g: &ClassGaussians, features: Rows) -> Result<Vec<f64>> {
    g.check(features)?;
    Ok((0..features.len())
        .into_par_iter()
        .map(|i| {
            let x = features.row(i);
            let background = -quadratic(&g.whole_precision, x, &g.whole_mean);
            max(g.class_scores(x).into_iter().map(|s| s - background))
        })
        .collect())
}
