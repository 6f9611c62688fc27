//! The hyperparameter search on a validation OOD set, against values worked out by hand.

use oodlab_detectors::{search, Detector, Linear, Query, Reference, Rows};

fn q<'a>(features: &'a [f32], dim: usize, logits: &'a [f32], classes: usize) -> Query<'a> {
    Query { features: Rows::new(features, dim).unwrap(), logits: Rows::new(logits, classes).unwrap() }
}

/// Unit vectors at these angles (degrees), as rows of 2.
fn at(degrees: &[f64]) -> Vec<f32> {
    degrees.iter().flat_map(|d| [d.to_radians().cos() as f32, d.to_radians().sin() as f32]).collect()
}

#[test]
fn knn_picks_the_k_whose_validation_auroc_is_larger_by_hand() {
    // Training features at 0°, 10° and 90°. Between unit vectors a° apart the squared distance
    // is 2 - 2 cos a, and KNN's score is minus the k-th smallest:
    //   ID at 5°:   distances 2-2cos5 (0°), 2-2cos5 (10°), 2-2cos85 (90°)
    //   ID at 45°:  2-2cos35 = 0.362 (10°), 2-2cos45 = 0.586 (0°, 90°)
    //   OOD at 80°: 2-2cos10 = 0.030 (90°), 2-2cos70 = 1.316 (10°), 2-2cos80 (0°)
    // k = 1: ID scores -0.0076, -0.362; OOD -0.030: one of two ID above the OOD, AUROC 0.5.
    // k = 2: ID -0.0076, -0.586; OOD -1.316: both above, AUROC 1.
    let train = at(&[0.0, 10.0, 90.0]);
    let last = Linear::new(vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], 2).unwrap();
    let reference = Reference { train: Rows::new(&train, 2).unwrap(), labels: &[0, 0, 1], classes: 2, last: &last };
    let (id, ood) = (at(&[5.0, 45.0]), at(&[80.0]));
    let (id_logits, ood_logits) = (vec![0.0f32; 4], vec![0.0f32; 2]);
    let s = search(&[Detector::Knn { k: 1 }, Detector::Knn { k: 2 }], &reference, q(&id, 2, &id_logits, 2), q(&ood, 2, &ood_logits, 2))
        .unwrap();
    assert_eq!(s.chosen, Detector::Knn { k: 2 });
    assert_eq!(s.tried.iter().map(|(_, a)| *a).collect::<Vec<_>>(), [0.5, 1.0]);
    assert_eq!(s.val_auroc, 1.0);
    assert!(s.no_effect.is_empty(), "{:?}", s.no_effect);
}

#[test]
fn an_axis_that_changes_no_score_is_reported() {
    // GEN over 3 classes: M = 10 and M = 100 both take all 3 probabilities, so M changes
    // nothing; gamma does.
    let logits = [2.0f32, 0.0, -1.0, 0.5, 0.4, 0.3, 3.0, -2.0, 0.0];
    let ood = [0.1f32, 0.0, 0.2, 1.0, 0.9, 1.1];
    let features = vec![0.0f32; 3];
    let last = Linear::new(vec![0.0; 3], vec![0.0; 3], 1).unwrap();
    let train = [0.0f32, 1.0, 2.0];
    let reference = Reference { train: Rows::new(&train, 1).unwrap(), labels: &[0, 1, 2], classes: 3, last: &last };
    let grid: Vec<Detector> = [0.1, 2.0].iter().flat_map(|&gamma| [100, 10].map(|m| Detector::Gen { gamma, m })).collect();
    let s = search(&grid, &reference, q(&features, 1, &logits, 3), q(&features[..2], 1, &ood, 3)).unwrap();
    assert_eq!(s.no_effect, ["m"]);
    assert_eq!(s.tried.len(), 4);
    // A tie keeps the first candidate, so a grid lists the default first.
    for first in [100, 10] {
        let other = 110 - first;
        let pair = [Detector::Gen { gamma: 0.1, m: first }, Detector::Gen { gamma: 0.1, m: other }];
        let s = search(&pair, &reference, q(&features, 1, &logits, 3), q(&features[..2], 1, &ood, 3)).unwrap();
        assert_eq!(s.chosen, pair[0]);
        assert_eq!(s.tried[0].1, s.tried[1].1);
    }
}
