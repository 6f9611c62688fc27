//! Statistics across seeds and between methods: summaries with a t confidence interval, a seeded
//! bootstrap interval of a mean, and the Wilcoxon signed-rank test as `scipy.stats.wilcoxon`
//! computes it (two-sided, zeros dropped, no continuity correction).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// n, mean, sample standard deviation (ddof = 1) and the half-width of the 95% t interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (ddof = 1); NaN for n < 2.
    pub std: f64,
    /// `t_{0.975, n-1} · std / sqrt(n)`; NaN for n < 2.
    pub ci95: f64,
}

pub fn summary(values: &[f64]) -> Summary {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Summary { n, mean, std: f64::NAN, ci95: f64::NAN };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    Summary { n, mean, std, ci95: t_quantile(0.975, (n - 1) as f64) * std / (n as f64).sqrt() }
}

/// Percentile bootstrap interval of the mean of `values`: `resamples` means of samples drawn with
/// replacement from a ChaCha8 stream seeded with `seed`; the (alpha/2, 1 - alpha/2) quantiles
/// with linear interpolation (numpy's default).
pub fn bootstrap_mean_ci(values: &[f64], resamples: usize, alpha: f64, seed: u64) -> (f64, f64) {
    let n = values.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples).map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    (quantile_sorted(&means, alpha / 2.0), quantile_sorted(&means, 1.0 - alpha / 2.0))
}

/// Linear-interpolation quantile of sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Which null distribution gave the p-value, as SciPy chooses it with `method='auto'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WilcoxonMethod {
    /// No ties, no zeros, n <= 50: the exact distribution of the signed-rank sum.
    Exact,
    /// Ties or zeros and n <= 13: all 2^n sign flips (SciPy's deterministic permutation test).
    Permutation,
    /// Otherwise: the normal approximation with the tie correction.
    Asymptotic,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Wilcoxon {
    /// `min(R+, R-)`, SciPy's two-sided statistic.
    pub statistic: f64,
    pub p_value: f64,
    pub method: WilcoxonMethod,
    /// Non-zero differences used.
    pub n: usize,
}

/// Two-sided Wilcoxon signed-rank test of paired differences `d` (zeros dropped), as
/// `scipy.stats.wilcoxon(d)` (SciPy 1.17) computes it. None when every difference is zero.
pub fn wilcoxon(d: &[f64]) -> Option<Wilcoxon> {
    let nonzero: Vec<f64> = d.iter().copied().filter(|v| *v != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return None;
    }
    let (ranks, tie_sizes) = average_ranks(&nonzero.iter().map(|v| v.abs()).collect::<Vec<_>>());
    // Folds from +0.0: `sum` of no f64 is -0.0, which would print as "-0".
    let r_plus: f64 = nonzero.iter().zip(&ranks).filter(|(v, _)| **v > 0.0).map(|(_, r)| r).fold(0.0, |a, b| a + b);
    let r_minus: f64 = nonzero.iter().zip(&ranks).filter(|(v, _)| **v < 0.0).map(|(_, r)| r).fold(0.0, |a, b| a + b);
    let has_ties = tie_sizes.iter().any(|&t| t > 1);
    let zeros = d.len() - n;
    let method = if d.len() > 50 {
        WilcoxonMethod::Asymptotic
    } else if !has_ties && zeros == 0 {
        WilcoxonMethod::Exact
    } else if d.len() <= 13 {
        WilcoxonMethod::Permutation
    } else {
        WilcoxonMethod::Asymptotic
    };
    let p_value = match method {
        WilcoxonMethod::Exact => {
            let counts = signed_rank_counts(n);
            let total: f64 = counts.iter().sum();
            let cdf = |x: f64| counts.iter().take(x as usize + 1).sum::<f64>() / total;
            let sf = |x: f64| counts.iter().skip(x as usize).sum::<f64>() / total;
            (2.0 * sf(r_plus.floor()).min(cdf(r_plus.ceil()))).min(1.0)
        }
        WilcoxonMethod::Permutation => {
            // Every assignment of signs to the ranks is equally likely under the null.
            let total = 1u64 << n;
            let (mut le, mut ge) = (0u64, 0u64);
            // SciPy compares with a relative tolerance so that equal sums in floating point count.
            let tol = r_plus.abs() * 1e-14;
            for mask in 0..total {
                let t: f64 = (0..n).filter(|i| mask >> i & 1 == 1).map(|i| ranks[i]).sum();
                le += u64::from(t <= r_plus + tol);
                ge += u64::from(t >= r_plus - tol);
            }
            (2.0 * (le.min(ge) as f64 / total as f64)).min(1.0)
        }
        WilcoxonMethod::Asymptotic => {
            let nf = n as f64;
            let mean = nf * (nf + 1.0) / 4.0;
            let ties: f64 = tie_sizes.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
            let se = ((nf * (nf + 1.0) * (2.0 * nf + 1.0) - ties / 2.0) / 24.0).sqrt();
            let z = (r_plus - mean) / se;
            libm::erfc(z.abs() / std::f64::consts::SQRT_2)
        }
    };
    Some(Wilcoxon { statistic: r_plus.min(r_minus), p_value, method, n })
}

/// Average ranks (1-based) of `x`, and the size of each group of tied values.
fn average_ranks(x: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut ties = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        ties.push(j - i + 1);
        i = j + 1;
    }
    (ranks, ties)
}

/// `counts[s]`: the number of subsets of {1..n} summing to s (the null distribution of R+).
fn signed_rank_counts(n: usize) -> Vec<f64> {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0.0; max + 1];
    counts[0] = 1.0;
    for k in 1..=n {
        for s in (k..=max).rev() {
            counts[s] += counts[s - k];
        }
    }
    counts
}

/// The `p` quantile of Student's t with `df` degrees of freedom, by bisection on its CDF.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi): (f64, f64) = (-1e3, 1e3);
    // Bisection to f64 resolution: ~55 halvings of the bracket, not a fixed count (each step
    // costs an incomplete beta, slow for large df; the comparison table takes one per cell).
    while hi - lo > 1e-13 * (1.0 + lo.abs().min(hi.abs())) {
        let mid = (lo + hi) / 2.0;
        if t_cdf(mid, df) < p {
            lo = mid
        } else {
            hi = mid
        }
    }
    (lo + hi) / 2.0
}

/// Student's t CDF through the regularized incomplete beta function.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, x);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Regularized incomplete beta `I_x(a, b)` by its continued fraction (modified Lentz).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) + a * x.ln() + b * (1.0 - x).ln();
    // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(b, a, 1.0 - x);
    }
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
    let mut f = d;
    for m in 1..1000 {
        let m = m as f64;
        for num in
            [m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)), -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))]
        {
            d = 1.0 + num * d;
            d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
            c = 1.0 + num / c;
            if c.abs() < tiny {
                c = tiny;
            }
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-16 {
            break;
        }
    }
    ln_front.exp() * f / a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_by_hand() {
        // mean 2, deviations -1, 0, 1: sample variance 1; t_{0.975, 2} = 4.302652729749464.
        let s = summary(&[1.0, 2.0, 3.0]);
        assert_eq!((s.n, s.mean, s.std), (3, 2.0, 1.0));
        assert!((s.ci95 - 4.302652729749464 / 3f64.sqrt()).abs() < 1e-9);
        assert!(summary(&[5.0]).std.is_nan());
    }

    #[test]
    fn t_quantiles_known_values() {
        assert!((t_quantile(0.975, 1.0) - 12.706204736174696).abs() < 1e-8);
        assert!((t_quantile(0.975, 1e6) - 1.959966).abs() < 1e-5);
    }

    #[test]
    fn bootstrap_is_seeded_and_degenerate_when_constant() {
        let d = [0.1, -0.2, 0.3, 0.05, 0.2];
        assert_eq!(bootstrap_mean_ci(&d, 2000, 0.05, 1), bootstrap_mean_ci(&d, 2000, 0.05, 1));
        let (lo, hi) = bootstrap_mean_ci(&d, 2000, 0.05, 1);
        assert!(lo < 0.09 && 0.09 < hi);
        assert_eq!(bootstrap_mean_ci(&[0.5; 4], 100, 0.05, 3), (0.5, 0.5));
    }

    #[test]
    fn signed_rank_distribution_by_hand() {
        // Subsets of {1, 2, 3}: sums 0, 1, 2, 3, 3, 4, 5, 6.
        assert_eq!(signed_rank_counts(3), vec![1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]);
        assert!(wilcoxon(&[0.0, 0.0]).is_none());
    }
}
