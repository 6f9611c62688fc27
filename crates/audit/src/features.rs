//! Near duplicates by what a trained network sees (issue #34, point 1): two images whose
//! penultimate features, saved by a finished baseline of the spec, point the same way. Each
//! image of a later role is matched to its nearest image of each earlier role with the KNN
//! detector's own scan ([`oodlab_detectors::nearest`]), on features centred on the ID training
//! sample's mean: a ReLU network's features are all non-negative, and uncentred their cosines
//! crowd near 1 for any two images (on paper-fmnist's baseline, split 0, the median nearest
//! cosine of an ID test image to the training sample is 0.997 uncentred, 0.986 centred;
//! docs/audit.md).

use oodlab_detectors::{DetectorError, Rows};
use serde::{Deserialize, Serialize};

/// One role's saved features: the rows the baseline saved for it, each with the image's index in
/// the audit's role (the ID training sample is a subset of the role) and its position in the part
/// it was loaded from.
#[derive(Debug, Clone)]
pub struct FeatureRole {
    pub name: String,
    pub features: Vec<f32>,
    pub indices: Vec<usize>,
    pub positions: Vec<usize>,
}

/// Images of role `b` whose nearest image of role `a` (listed before it) is at least the
/// cosine apart; `b_images`: the images of `b` that have features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureCell {
    pub a: String,
    pub b: String,
    pub b_near: usize,
    pub b_images: usize,
}

/// An image of `b` and its nearest image of `a`, by features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturePair {
    pub a_role: String,
    pub a_index: usize,
    pub a_position: usize,
    pub b_role: String,
    pub b_index: usize,
    pub b_position: usize,
    pub cosine: f64,
}

/// The near duplicates by features of a split's roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ByFeatures {
    /// The baseline whose features were compared.
    pub run_id: String,
    /// The least cosine of two near duplicates' centred features.
    pub cosine: f64,
    /// The roles compared (those the baseline saved features of), with their rows.
    pub roles: Vec<(String, usize)>,
    /// One cell per pair of roles, in the roles' order.
    pub cells: Vec<FeatureCell>,
    /// The most alike pairs at or over the cosine, most alike first, at most `show`.
    pub closest: Vec<FeaturePair>,
}

impl ByFeatures {
    /// The table every reader shows: per role, for each later role, its cell.
    pub fn matrix(&self) -> Vec<(&str, usize, Vec<Option<&FeatureCell>>)> {
        self.roles
            .iter()
            .enumerate()
            .map(|(i, (a, size))| {
                let row = self
                    .roles
                    .iter()
                    .enumerate()
                    .map(|(j, (b, _))| if j <= i { None } else { self.cells.iter().find(|c| c.a == *a && c.b == *b) })
                    .collect();
                (a.as_str(), *size, row)
            })
            .collect()
    }
}

/// The mean of `rows` (whole rows of `dim` values), by which [`by_features`] centres: the ID
/// training sample's.
pub fn mean(rows: &[f32], dim: usize) -> Vec<f32> {
    let n = rows.len() / dim.max(1);
    let mut m = vec![0f64; dim];
    for row in rows.chunks_exact(dim) {
        m.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
    }
    m.iter().map(|v| (v / n.max(1) as f64) as f32).collect()
}

/// Compares every pair of `roles` by the cosine of their `dim`-value features less `centre`.
pub fn by_features(
    run_id: &str,
    roles: &[FeatureRole],
    dim: usize,
    centre: &[f32],
    cosine: f64,
    show: usize,
) -> Result<ByFeatures, DetectorError> {
    let mean = centre;
    let centred: Vec<Vec<f32>> =
        roles.iter().map(|r| r.features.chunks_exact(dim).flat_map(|row| row.iter().zip(mean).map(|(v, m)| v - m)).collect()).collect();
    let mut cells = Vec::new();
    let mut closest: Vec<FeaturePair> = Vec::new();
    for (ai, a) in roles.iter().enumerate() {
        for (bi, b) in roles.iter().enumerate().skip(ai + 1) {
            let mut cell = FeatureCell { a: a.name.clone(), b: b.name.clone(), b_near: 0, b_images: b.indices.len() };
            if !a.indices.is_empty() && !b.indices.is_empty() {
                let found = oodlab_detectors::nearest(Rows::new(&centred[ai], dim)?, Rows::new(&centred[bi], dim)?)?;
                for (j, (i, d)) in found.into_iter().enumerate() {
                    // Unit vectors: ‖x − y‖² = 2 − 2 cos.
                    let cos = 1.0 - d / 2.0;
                    if cos < cosine {
                        continue;
                    }
                    cell.b_near += 1;
                    closest.push(FeaturePair {
                        a_role: a.name.clone(),
                        a_index: a.indices[i],
                        a_position: a.positions[i],
                        b_role: b.name.clone(),
                        b_index: b.indices[j],
                        b_position: b.positions[j],
                        cosine: cos,
                    });
                }
                closest.sort_by(|p, q| q.cosine.total_cmp(&p.cosine));
                closest.truncate(show);
            }
            cells.push(cell);
        }
    }
    Ok(ByFeatures {
        run_id: run_id.into(),
        cosine,
        roles: roles.iter().map(|r| (r.name.clone(), r.indices.len())).collect(),
        cells,
        closest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, rows: &[[f32; 2]]) -> FeatureRole {
        FeatureRole {
            name: name.into(),
            features: rows.iter().flatten().copied().collect(),
            indices: (0..rows.len()).map(|i| 10 * i).collect(),
            positions: (0..rows.len()).map(|i| 100 + i).collect(),
        }
    }

    #[test]
    fn cosines_of_centred_features_worked_by_hand() {
        // The training sample's mean is (1, 1): centred, its rows are (1, 0) and (-1, 0).
        let train = role("id_train", &[[2.0, 1.0], [0.0, 1.0]]);
        let centre = mean(&train.features, 2);
        assert_eq!(centre, vec![1.0, 1.0]);
        // Centred: (1, 1) at 45° from (1, 0): cos 0.7071; (-1, 0.01): cos 0.99995 with (-1, 0).
        let test = role("id_test", &[[2.0, 2.0], [0.0, 1.01]]);
        let f = by_features("b", &[train, test], 2, &centre, 0.999, 5).unwrap();
        assert_eq!(f.cells, vec![FeatureCell { a: "id_train".into(), b: "id_test".into(), b_near: 1, b_images: 2 }]);
        let p = &f.closest[0];
        assert_eq!((p.a_index, p.a_position, p.b_index, p.b_position), (10, 101, 10, 101));
        let want = 1.0 / (1.0f64 + 0.01f64 * 0.01).sqrt();
        assert!((p.cosine - want).abs() < 1e-6, "{} against {want}", p.cosine);
        // At 0.7 both are near, the more alike first.
        let (train, test) = (role("id_train", &[[2.0, 1.0], [0.0, 1.0]]), role("id_test", &[[2.0, 2.0], [0.0, 1.01]]));
        let f = by_features("b", &[train, test], 2, &centre, 0.7, 5).unwrap();
        assert_eq!(f.cells[0].b_near, 2);
        assert!(f.closest[0].cosine > f.closest[1].cosine && (f.closest[1].cosine - 0.5f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn the_matrix_holds_each_pair_once_above_the_diagonal() {
        let r = |n: &str| role(n, &[[1.0, 0.0]]);
        let f = by_features("b", &[r("x"), r("y"), r("z")], 2, &[0.0, 0.0], 0.9, 5).unwrap();
        let pairs: Vec<(&str, &str)> = f.cells.iter().map(|c| (c.a.as_str(), c.b.as_str())).collect();
        assert_eq!(pairs, vec![("x", "y"), ("x", "z"), ("y", "z")]);
        let m = f.matrix();
        assert_eq!(m[0].2.iter().map(|c| c.is_some()).collect::<Vec<_>>(), vec![false, true, true]);
        assert_eq!(m[2].2.iter().map(|c| c.is_some()).collect::<Vec<_>>(), vec![false, false, false]);
    }
}
