//! ROC and precision-recall curves over distinct thresholds.

use serde::Serialize;
use thiserror::Error;

/// The four OOD metrics of one score on one (ID, OOD) pair of sets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OodMetrics {
    /// Area under the ROC curve (OOD positive, statistic `-score`), trapezoid rule.
    pub auroc: f64,
    /// Fraction of ID samples flagged OOD at the first threshold where OOD recall reaches 0.95.
    pub fpr95: f64,
    /// Area under precision-recall with ID positive and statistic `score`, trapezoid rule.
    pub aupr_in: f64,
    /// Area under precision-recall with OOD positive and statistic `-score`, trapezoid rule.
    pub aupr_out: f64,
}

#[derive(Debug, Error, PartialEq)]
pub enum MetricsError {
    #[error("the {0} score set is empty; OOD metrics need at least one ID and one OOD score")]
    Empty(&'static str),
    #[error("{set} score #{index} is {value}; scores must be finite numbers")]
    NotFinite { set: &'static str, index: usize, value: f64 },
}

/// Cumulative counts at each distinct threshold, from the most positive statistic down.
/// `tp[i]`, `fp[i]`: positives and negatives with statistic >= the i-th distinct value.
struct Counts {
    tp: Vec<f64>,
    fp: Vec<f64>,
}

/// `pos` and `neg` are statistics (larger = more positive).
fn counts(pos: &[f64], neg: &[f64]) -> Counts {
    let mut all: Vec<(f64, bool)> = pos.iter().map(|&s| (s, true)).chain(neg.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (Vec::new(), Vec::new());
    let (mut t, mut f) = (0.0, 0.0);
    for (i, &(s, is_pos)) in all.iter().enumerate() {
        if is_pos {
            t += 1.0
        } else {
            f += 1.0
        }
        // Tied statistics form one threshold: emit a point only after the last of a tie run.
        // `==` treats -0.0 and 0.0 as one value, as numpy does.
        if all.get(i + 1).is_none_or(|next| next.0 != s) {
            tp.push(t);
            fp.push(f);
        }
    }
    Counts { tp, fp }
}

fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2).zip(y.windows(2)).map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0).sum()
}

/// Area under precision-recall, as `sklearn.metrics.auc(recall, precision)` over
/// `precision_recall_curve`: one point per distinct threshold plus the (recall 0, precision 1) end.
fn aupr(c: &Counts) -> f64 {
    let total_pos = *c.tp.last().expect("non-empty sets");
    let mut recall = vec![0.0];
    let mut precision = vec![1.0];
    for (&tp, &fp) in c.tp.iter().zip(&c.fp) {
        recall.push(tp / total_pos);
        precision.push(if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 });
    }
    trapezoid(&recall, &precision)
}

pub(crate) fn check(set: &'static str, scores: &[f64]) -> Result<(), MetricsError> {
    if scores.is_empty() {
        return Err(MetricsError::Empty(set));
    }
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(MetricsError::NotFinite { set, index, value: scores[index] }),
        None => Ok(()),
    }
}

/// The ROC curve whose area is [`OodMetrics::auroc`]: (FPR, TPR) with OOD the positive class and
/// `-score` the statistic, from (0, 0), one point per distinct threshold, to (1, 1).
pub fn roc_curve(id: &[f64], ood: &[f64]) -> Result<Vec<(f64, f64)>, MetricsError> {
    check("ID", id)?;
    check("OOD", ood)?;
    let neg = |s: &[f64]| s.iter().map(|v| -v).collect::<Vec<_>>();
    let out = counts(&neg(ood), &neg(id));
    let (n_ood, n_id) = (ood.len() as f64, id.len() as f64);
    Ok(std::iter::once((0.0, 0.0)).chain(out.fp.iter().zip(&out.tp).map(|(f, t)| (f / n_id, t / n_ood))).collect())
}

/// AUROC, FPR@95, AUPR-In and AUPR-Out of `id` against `ood` scores (larger = more ID-like).
pub fn ood_metrics(id: &[f64], ood: &[f64]) -> Result<OodMetrics, MetricsError> {
    check("ID", id)?;
    check("OOD", ood)?;
    let neg = |s: &[f64]| s.iter().map(|v| -v).collect::<Vec<_>>();
    let (id_neg, ood_neg) = (neg(id), neg(ood));

    // OOD positive, statistic -score.
    let out = counts(&ood_neg, &id_neg);
    let (n_ood, n_id) = (ood.len() as f64, id.len() as f64);
    let mut tpr = vec![0.0];
    let mut fpr = vec![0.0];
    tpr.extend(out.tp.iter().map(|t| t / n_ood));
    fpr.extend(out.fp.iter().map(|f| f / n_id));
    let auroc = trapezoid(&fpr, &tpr);
    // The last point has tpr = 1, so a threshold reaching 0.95 always exists.
    let at = tpr.iter().position(|&t| t >= 0.95).expect("tpr reaches 1");
    let fpr95 = fpr[at];

    let aupr_out = aupr(&out);
    let aupr_in = aupr(&counts(id, ood));
    Ok(OodMetrics { auroc, fpr95, aupr_in, aupr_out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn perfect_separation_by_hand() {
        let m = ood_metrics(&[3.0, 4.0], &[1.0, 2.0]).unwrap();
        assert_eq!(m, OodMetrics { auroc: 1.0, fpr95: 0.0, aupr_in: 1.0, aupr_out: 1.0 });
    }

    #[test]
    fn all_tied_scores_are_one_threshold() {
        // One threshold: ROC is the diagonal from (0,0) to (1,1): AUROC 0.5; recall jumps to 1 at
        // precision 1/2, so AUPR = (1 + 0.5) / 2 = 0.75 for both directions; FPR@95 = 1.
        let m = ood_metrics(&[1.0, 1.0], &[1.0, 1.0]).unwrap();
        assert_eq!(m, OodMetrics { auroc: 0.5, fpr95: 1.0, aupr_in: 0.75, aupr_out: 0.75 });
    }

    #[test]
    fn auroc_by_hand_with_one_inversion() {
        // 9 (id, ood) pairs, one ranked wrong (ood 0.75 > id 0.7): AUROC = 8/9.
        let m = ood_metrics(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.75]).unwrap();
        assert!(close(m.auroc, 8.0 / 9.0));
        // OOD recall reaches 1 only after the ID sample 0.7 is flagged: FPR@95 = 1/3.
        assert!(close(m.fpr95, 1.0 / 3.0));
    }

    #[test]
    fn roc_curve_by_hand() {
        // OOD positive, statistic -score, from the largest: ood 0.1, ood 0.2, id 0.7, ood 0.75,
        // id 0.8, id 0.9 — each a step up (OOD) or right (ID) by a third.
        let (id, ood) = ([0.9, 0.8, 0.7], [0.1, 0.2, 0.75]);
        let c = roc_curve(&id, &ood).unwrap();
        let t = 1.0 / 3.0;
        let want = [(0.0, 0.0), (0.0, t), (0.0, 2.0 * t), (t, 2.0 * t), (t, 1.0), (2.0 * t, 1.0), (1.0, 1.0)];
        assert_eq!(c.len(), want.len(), "{c:?}");
        for (a, b) in c.iter().zip(want) {
            assert!(close(a.0, b.0) && close(a.1, b.1), "{c:?}");
        }
        // Its area is AUROC's 8/9 (one inverted pair).
        let (x, y): (Vec<f64>, Vec<f64>) = c.into_iter().unzip();
        assert!(close(trapezoid(&x, &y), 8.0 / 9.0));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(ood_metrics(&[], &[1.0]), Err(MetricsError::Empty("ID")));
        assert!(matches!(ood_metrics(&[1.0], &[f64::NAN]), Err(MetricsError::NotFinite { index: 0, .. })));
    }
}
