//! Descriptive analyses of a run's outputs: a 2-D PCA of logits (fitted on ID logits, applied to
//! any set) and fixed-bin histograms of scores.

/// A 2-D principal-component projection of k-dimensional rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Mean of the fitted rows (k).
    pub mean: Vec<f64>,
    /// The two leading eigenvectors of the covariance, unit length, row-major (2 × k); each
    /// signed so that its largest component is positive (a fixed sign for reproducibility).
    pub components: Vec<f64>,
    /// Their eigenvalues (sample covariance, ddof = 1), largest first.
    pub explained_variance: [f64; 2],
}

impl Pca {
    /// Fits on `rows` (n × k, row-major); needs n ≥ 2 and k ≥ 2.
    pub fn fit(rows: &[f32], k: usize) -> Option<Pca> {
        let n = rows.len().checked_div(k)?;
        if n < 2 || k < 2 {
            return None;
        }
        let mut mean = vec![0f64; k];
        for row in rows.chunks_exact(k) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0f64; k * k];
        for row in rows.chunks_exact(k) {
            let d: Vec<f64> = row.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect();
            for i in 0..k {
                for j in i..k {
                    cov[i * k + j] += d[i] * d[j];
                }
            }
        }
        for i in 0..k {
            for j in i..k {
                cov[i * k + j] /= (n - 1) as f64;
                cov[j * k + i] = cov[i * k + j];
            }
        }
        let (values, vectors) = jacobi(cov, k);
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let mut components = Vec::with_capacity(2 * k);
        for &c in &order[..2] {
            let mut v: Vec<f64> = (0..k).map(|r| vectors[r * k + c]).collect();
            let largest = v.iter().copied().fold(0f64, |a, b| if b.abs() > a.abs() { b } else { a });
            if largest < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            components.extend(v);
        }
        Some(Pca { mean, components, explained_variance: [values[order[0]], values[order[1]]] })
    }

    /// Projects rows (m × k) onto the two components: m × 2, row-major.
    pub fn project(&self, rows: &[f32]) -> Vec<f32> {
        let k = self.mean.len();
        rows.chunks_exact(k)
            .flat_map(|row| {
                (0..2).map(move |c| {
                    row.iter().zip(&self.mean).zip(&self.components[c * k..(c + 1) * k]).map(|((&v, m), w)| (v as f64 - m) * w).sum::<f64>()
                        as f32
                })
            })
            .collect()
    }
}

/// Eigenvalues and eigenvectors (columns of a row-major k × k matrix) of a symmetric matrix by
/// cyclic Jacobi rotations; exact enough for the few hundred classes of a logit space.
fn jacobi(mut a: Vec<f64>, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; k * k];
    (0..k).for_each(|i| v[i * k + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..k).flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * k + j].powi(2)).sum();
        let scale: f64 = (0..k).map(|i| a[i * k + i].powi(2)).sum::<f64>().max(1e-300);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[p * k + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * k + q] - a[p * k + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for r in 0..k {
                    let (arp, arq) = (a[r * k + p], a[r * k + q]);
                    a[r * k + p] = c * arp - s * arq;
                    a[r * k + q] = s * arp + c * arq;
                }
                for r in 0..k {
                    let (apr, aqr) = (a[p * k + r], a[q * k + r]);
                    a[p * k + r] = c * apr - s * aqr;
                    a[q * k + r] = s * apr + c * aqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * vrp - s * vrq;
                    v[r * k + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    ((0..k).map(|i| a[i * k + i]).collect(), v)
}

/// Counts of `values` in `bins` equal bins over [lo, hi]; the last bin includes `hi`, values
/// outside are not counted.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<u64> {
    let mut counts = vec![0u64; bins];
    let width = (hi - lo) / bins as f64;
    for &v in values {
        if !(lo..=hi).contains(&v) || width <= 0.0 {
            continue;
        }
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_known_axes() {
        // Points spread along u = (3, 4, 0)/5 (variance large), a little along w = (0, 0, 1), none
        // along the third axis: the components are ±u and ±w, the variances those of the spreads.
        let ts = [-2.0f64, -1.0, 0.0, 1.0, 2.0];
        let ss = [-0.1f64, 0.1];
        let mut rows = Vec::new();
        for &t in &ts {
            for &s in &ss {
                rows.extend([(1.0 + 0.6 * t) as f32, (2.0 + 0.8 * t) as f32, (-1.0 + s) as f32]);
            }
        }
        let pca = Pca::fit(&rows, 3).unwrap();
        // Var(t) over the 10 points (each t twice): Σt² = 2·10 = 20, /(10-1); Var(s) = 10·0.01/9.
        assert!((pca.explained_variance[0] - 20.0 / 9.0).abs() < 1e-6, "{pca:?}");
        assert!((pca.explained_variance[1] - 0.1 / 9.0).abs() < 1e-6, "{pca:?}");
        let c = &pca.components;
        for (got, want) in c[..3].iter().zip([0.6, 0.8, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{c:?}");
        }
        for (got, want) in c[3..].iter().zip([0.0, 0.0, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{c:?}");
        }
        // The mean projects to the origin; a point one unit along u to (1, 0).
        let p = pca.project(&[1.0, 2.0, -1.0, 1.6, 2.8, -1.0]);
        for (got, want) in p.iter().zip([0.0, 0.0, 1.0, 0.0]) {
            assert!((got - want).abs() < 1e-5, "{p:?}");
        }
        assert!(Pca::fit(&[1.0, 2.0], 2).is_none(), "one row has no covariance");
    }

    #[test]
    fn histogram_by_hand() {
        // Bins of width 0.25 over [0, 1]: [0, .25) [.25, .5) [.5, .75) [.75, 1].
        assert_eq!(histogram(&[0.0, 0.1, 0.25, 0.7, 1.0, 1.5, -0.1], 0.0, 1.0, 4), vec![2, 1, 1, 1]);
    }
}

/// What a score does along one path of evenly spaced points from an ID input (first) to an OOD
/// input (last).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathStats {
    /// Σ |s(t_{i+1}) − s(t_i)|: how much the score moves in all.
    pub total_variation: f64,
    /// max |s(t_{i+1}) − s(t_i)|: its largest single jump.
    pub largest_jump: f64,
    /// The first t in [0, 1] where the score falls below `threshold`, if it does.
    pub crossing: Option<f64>,
}

/// Statistics of one path's scores against the detection threshold.
pub fn path_stats(scores: &[f64], threshold: f64) -> PathStats {
    let steps = scores.windows(2).map(|w| (w[1] - w[0]).abs());
    let total_variation = steps.clone().sum();
    let largest_jump = steps.fold(0.0, f64::max);
    let last = scores.len().saturating_sub(1).max(1) as f64;
    let crossing = scores.iter().position(|&s| s < threshold).map(|i| i as f64 / last);
    PathStats { total_variation, largest_jump, crossing }
}

/// The score above which 95% of ID scores lie: the threshold at which FPR@95 is measured (ID
/// positive, TPR = 0.95), as the 5th percentile of ID scores (lower interpolation).
pub fn tpr95_threshold(id_scores: &[f64]) -> f64 {
    let mut s = id_scores.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64) * 0.05).floor() as usize]
}

/// Mean, median and 90th percentile (linear interpolation, as NumPy's default) of `v`.
pub fn summary3(v: &[f64]) -> [f64; 3] {
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let x = p * (s.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        s[lo] + (s[hi] - s[lo]) * (x - lo as f64)
    };
    [s.iter().sum::<f64>() / s.len() as f64, q(0.5), q(0.9)]
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn path_stats_by_hand() {
        // Scores 1.0, 0.8, 0.9, 0.2, 0.1 at t = 0, .25, .5, .75, 1: steps .2 .1 .7 .1.
        let p = path_stats(&[1.0, 0.8, 0.9, 0.2, 0.1], 0.5);
        assert!((p.total_variation - 1.1).abs() < 1e-12 && (p.largest_jump - 0.7).abs() < 1e-12);
        assert_eq!(p.crossing, Some(0.75));
        assert_eq!(path_stats(&[1.0, 0.9], 0.5).crossing, None);
        // 100 ID scores 0..99: 5% lie below 5.
        assert_eq!(tpr95_threshold(&(0..100).map(f64::from).collect::<Vec<_>>()), 5.0);
        // NumPy: mean 2.5, median 2.5, percentile(90) = 3.7 for [1, 2, 3, 4].
        let s = summary3(&[4.0, 1.0, 3.0, 2.0]);
        assert!((s[0] - 2.5).abs() < 1e-12 && (s[1] - 2.5).abs() < 1e-12 && (s[2] - 3.7).abs() < 1e-12, "{s:?}");
    }
}
