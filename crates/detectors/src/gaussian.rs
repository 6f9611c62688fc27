//! Mahalanobis (MDS) and relative Mahalanobis (RMDS) scores from class-conditional Gaussians
//! with one shared ("tied") covariance, fitted on ID training features.

use nalgebra::DMatrix;

use crate::linalg::{covariance, group_means, mean, project, whitening};
use crate::{invalid, Result, Rows};

/// Class means and the precision (pseudo-inverse) of the covariance of the class-centred
/// training features, and the class-agnostic background Gaussian RMDS subtracts. Each precision
/// is kept as a whitening W (W Wᵀ = precision), the means already multiplied by it: a squared
/// distance is then ‖x W - μ W‖².
#[derive(Clone, Debug)]
pub struct ClassGaussians {
    dim: usize,
    white: DMatrix<f64>,
    white_means: Vec<Vec<f64>>,
    whole_mean: Vec<f64>,
    whole_white: DMatrix<f64>,
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
        let class_means = group_means(train, classes, |i| labels[i]);
        if let Some(c) = class_means.iter().position(|(_, n)| *n == 0) {
            return invalid(format!("class {c} has no training features: its mean is undefined"));
        }
        let means: Vec<Vec<f64>> = class_means.into_iter().map(|(m, _)| m).collect();
        // scikit-learn centres the class-centred features once more on their own mean, which is
        // zero up to rounding: not repeated here.
        let white = whitening(&covariance(train, &means, |i| labels[i]));
        let white_means = means.iter().map(|m| (nalgebra::RowDVector::from_row_slice(m) * &white).iter().copied().collect()).collect();
        let whole_mean = mean(train);
        let whole_white = whitening(&covariance(train, std::slice::from_ref(&whole_mean), |_| 0));
        Ok(ClassGaussians { dim: train.dim(), white, white_means, whole_mean, whole_white })
    }

    fn check(&self, features: Rows) -> Result<()> {
        if features.dim() != self.dim {
            return invalid(format!("features of {} values, but the Gaussians were fitted on {}", features.dim(), self.dim));
        }
        Ok(())
    }

    /// -(x - μ_c)ᵀ P (x - μ_c) for each class c, for every feature vector.
    fn class_scores(&self, features: Rows) -> Vec<Vec<f64>> {
        let zero = vec![0.0; self.dim];
        project(features, &zero, &self.white)
            .into_iter()
            .map(|z| self.white_means.iter().map(|m| -z.iter().zip(m).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()).collect())
            .collect()
    }
}

fn max(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(f64::NEG_INFINITY, f64::max)
}

/// Mahalanobis score (Lee et al., NeurIPS 2018, without input noise; OpenOOD `mds`): the largest
/// over classes of minus the squared Mahalanobis distance to the class mean.
pub fn mahalanobis(g: &ClassGaussians, features: Rows) -> Result<Vec<f64>> {
    g.check(features)?;
    Ok(g.class_scores(features).into_iter().map(|s| max(s.into_iter())).collect())
}

/// Relative Mahalanobis score (Ren et al., 2021; OpenOOD `rmds`): the class scores minus the
/// background's (the squared distance under the Gaussian of all training features), largest over
/// classes.
pub fn rmds(g: &ClassGaussians, features: Rows) -> Result<Vec<f64>> {
    g.check(features)?;
    let background = project(features, &g.whole_mean, &g.whole_white);
    Ok(g.class_scores(features)
        .into_iter()
        .zip(background)
        .map(|(s, z)| {
            let background = -z.iter().map(|v| v * v).sum::<f64>();
            max(s.into_iter().map(|s| s - background))
        })
        .collect())
}
