//! MixOE's TNR@95, as its evaluation computes it: Kibok Lee's `calculate_log.py` (MixOE's
//! `utils/calculate_log.py`, from the Mahalanobis detector's code), not scikit-learn's curve.
//!
//! ID is the positive class with statistic `score`. Both sets are sorted ascending and the
//! threshold sweeps up through the merged scores one sample at a time, each step removing the
//! lowest remaining score: an OOD score strictly below the lowest ID score goes first, so on a
//! tie the ID score is removed before the equal OOD score. `tp` and `fp` count the ID and OOD
//! scores not yet removed, from (n_id, n_ood) down to (0, 0). The point taken is the first index
//! whose `tp / n_id` is nearest 0.95 (numpy's `argmin` of `|tp / n_id - 0.95|`), and
//! TNR@95 = 1 - fp / n_ood there. It is not `1 - FPR@95`: the positive class, the curve (one point
//! per sample, not per distinct threshold) and the choice of point all differ.

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::curve::{check, MetricsError};

/// TNR at the point nearest TPR 0.95 of `calculate_log.py`'s sweep.
pub fn tnr_at_tpr95(id: &[f64], ood: &[f64]) -> Result<f64, MetricsError> {
    check("ID", id)?;
    check("OOD", ood)?;
    let mut known = id.to_vec();
    let mut novel = ood.to_vec();
    known.sort_by(f64::total_cmp);
    novel.sort_by(f64::total_cmp);
    let (num_k, num_n) = (known.len(), novel.len());
    let distance = |tp: usize| (tp as f64 / num_k as f64 - 0.95).abs();
    // Index 0 is (n_id, n_ood); each step removes one score. Only a removed ID score changes
    // `tp`, so the sweep tracks the best (first) index as it goes.
    let (mut k, mut n) = (0, 0);
    let (mut best, mut best_fp) = (distance(num_k), num_n);
    while k < num_k {
        // `novel[n] < known[k]` in the reference: on a tie the ID score goes first.
        if n < num_n && novel[n] < known[k] {
            n += 1;
        } else {
            k += 1;
            let d = distance(num_k - k);
            if d < best {
                (best, best_fp) = (d, num_n - n);
            }
        }
    }
    // Once every ID score is removed only OOD scores remain; `tp` stays 0 and no later index can
    // be nearer than the first with `tp` = 0, already seen.
    Ok(1.0 - best_fp as f64 / num_n as f64)
}

/// MixOE's `eval/eval.py`: the mean TNR@95 over `runs` draws of `min(n_id, n_ood)` scores from each
/// set, without replacement, from a ChaCha8 stream seeded with `seed` (eval.py seeds Python's
/// `random` with 0 and draws 10 times; the draws themselves cannot be Python's).
pub fn tnr_at_tpr95_subsets(id: &[f64], ood: &[f64], runs: usize, seed: u64) -> Result<f64, MetricsError> {
    check("ID", id)?;
    check("OOD", ood)?;
    let size = id.len().min(ood.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut total = 0.0;
    for _ in 0..runs.max(1) {
        let a: Vec<f64> = sample(&mut rng, id.len(), size).into_iter().map(|i| id[i]).collect();
        let b: Vec<f64> = sample(&mut rng, ood.len(), size).into_iter().map(|i| ood[i]).collect();
        total += tnr_at_tpr95(&a, &b)?;
    }
    Ok(total / runs.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tnr_at_tpr95_by_hand() {
        // ID 1..20, OOD 0.5 and 19.5. The sweep removes 0.5 (OOD), then 1 (ID: tp 19 of 20, TPR
        // 0.95 exactly) with 19.5 still above: TNR = 1 - 1/2.
        let id: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(tnr_at_tpr95(&id, &[0.5, 19.5]).unwrap(), 0.5);
    }

    #[test]
    fn a_tie_removes_the_id_score_first() {
        // ID 1..20, OOD {1, 1}: on the tie at 1 the ID score goes first, so at TPR 0.95 (one ID
        // removed) both OOD scores remain: TNR 0. Had the OOD scores gone first, TNR would be 1.
        let id: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(tnr_at_tpr95(&id, &[1.0, 1.0]).unwrap(), 0.0);
    }

    #[test]
    fn the_nearest_point_is_chosen_in_floating_point_as_numpy_does() {
        // 10 ID scores: TPR steps by 0.1, and 0.9 and 1.0 are 0.05 from 0.95 on paper; in f64
        // |0.9 - 0.95| = 0.04999999999999993 < |1.0 - 0.95| = 0.050000000000000044 (numpy agrees),
        // so TPR 0.9 is taken: after 0.5 (OOD) and 1 (ID) are removed, 5.5 remains: TNR 1/2.
        let id: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(tnr_at_tpr95(&id, &[0.5, 5.5]).unwrap(), 0.5);
    }

    #[test]
    fn subsets_are_equal_size_and_seeded() {
        let id: Vec<f64> = (0..300).map(|i| (i as f64 * 0.37).sin()).collect();
        let ood: Vec<f64> = (0..40).map(|i| (i as f64 * 0.91).cos() - 0.3).collect();
        let a = tnr_at_tpr95_subsets(&id, &ood, 10, 0).unwrap();
        assert_eq!(a, tnr_at_tpr95_subsets(&id, &ood, 10, 0).unwrap());
        assert!((0.0..=1.0).contains(&a));
        // With equal sizes every draw is a permutation: the whole sets' value.
        let whole = tnr_at_tpr95(&id[..40], &ood).unwrap();
        assert_eq!(tnr_at_tpr95_subsets(&id[..40], &ood, 3, 5).unwrap(), whole);
    }
}
