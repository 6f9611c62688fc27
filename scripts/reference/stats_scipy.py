"""Reference values for oodlab-metrics' statistics, computed with SciPy (crates/metrics/tests/).

- summaries: n, mean, sample std (ddof = 1) and the 95% t half-width, scipy.stats.t.ppf(0.975, n - 1)
- t quantiles: scipy.stats.t.ppf
- Wilcoxon signed-rank: scipy.stats.wilcoxon(d) with its defaults (two-sided, zero_method='wilcox',
  correction=False, method='auto': exact without ties or zeros, a full permutation test with ties
  or zeros when n <= 13, the normal approximation otherwise).
Usage: python3 scripts/reference/stats_scipy.py > crates/metrics/tests/fixtures/scipy_reference.json
"""
import json

import numpy as np
import scipy
from scipy import stats


def main():
    rng = np.random.default_rng(7)
    samples = [[0.81, 0.84, 0.79], [0.5, 0.5], [0.912, 0.905, 0.931, 0.899, 0.921, 0.917, 0.903, 0.926, 0.915], rng.normal(0.7, 0.05, 30).tolist()]
    summaries = []
    for x in samples:
        x = np.array(x)
        n = len(x)
        std = x.std(ddof=1)
        summaries.append({"x": x.tolist(), "n": n, "mean": x.mean(), "std": std, "ci95": stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)})
    quantiles = [{"p": p, "df": df, "q": stats.t.ppf(p, df)} for p in [0.975, 0.95, 0.6, 0.025] for df in [1, 2, 3, 8, 29, 200]]
    diffs = [
        [0.012, -0.004, 0.021, 0.008, 0.015, -0.002, 0.011, 0.019, 0.007],  # n = 9, exact
        [0.03, 0.01, 0.02],  # all positive, exact
        [0.01, -0.01, 0.02, 0.02, 0.0, 0.03, -0.005, 0.01, 0.04],  # ties and a zero: permutation
        [1.0, -2.0, 3.0, -4.0, 5.0, 6.0, -7.0, 8.0, 9.0, 10.0, 11.0, 12.0],  # exact, n = 12
        np.round(rng.normal(0.01, 0.02, 20), 2).tolist(),  # ties, n = 20: asymptotic
        rng.normal(0.005, 0.01, 60).tolist(),  # n > 50: asymptotic
        [0.5, 0.5, -0.5, 0.5, 0.5, 0.5],  # all tied: permutation
    ]
    wilcoxon = []
    for d in diffs:
        res = stats.wilcoxon(d)
        wilcoxon.append({"d": d, "statistic": float(res.statistic), "p_value": float(res.pvalue)})
    print(json.dumps({"scipy": scipy.__version__, "summaries": summaries, "t_quantiles": quantiles, "wilcoxon": wilcoxon}, default=float))


if __name__ == "__main__":
    main()
