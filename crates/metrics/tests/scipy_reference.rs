//! Summaries, t quantiles and the Wilcoxon signed-rank test agree with SciPy.
//! Reference values: `scripts/reference/stats_scipy.py`, kept in `fixtures/`.

use oodlab_metrics::stats::{summary, t_quantile, wilcoxon};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/scipy_reference.json")).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn summaries_match_scipy() {
    for case in fixture()["summaries"].as_array().unwrap() {
        let x: Vec<f64> = serde_json::from_value(case["x"].clone()).unwrap();
        let s = summary(&x);
        assert_eq!(s.n as u64, case["n"].as_u64().unwrap());
        for (name, got, want) in [("mean", s.mean, f(&case["mean"])), ("std", s.std, f(&case["std"])), ("ci95", s.ci95, f(&case["ci95"]))] {
            assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{name} of {x:?}: got {got}, SciPy {want}");
        }
    }
}

#[test]
fn t_quantiles_match_scipy() {
    for case in fixture()["t_quantiles"].as_array().unwrap() {
        let got = t_quantile(f(&case["p"]), f(&case["df"]));
        let want = f(&case["q"]);
        assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{case}: got {got}");
    }
}

#[test]
fn wilcoxon_matches_scipy_exact_permutation_and_asymptotic() {
    let cases = fixture()["wilcoxon"].as_array().unwrap().clone();
    let mut methods = std::collections::BTreeSet::new();
    for case in &cases {
        let d: Vec<f64> = serde_json::from_value(case["d"].clone()).unwrap();
        let w = wilcoxon(&d).unwrap();
        methods.insert(format!("{:?}", w.method));
        assert_eq!(w.statistic, f(&case["statistic"]), "statistic of {d:?}");
        let want = f(&case["p_value"]);
        assert!((w.p_value - want).abs() < 1e-12, "p of {d:?} ({:?}): got {}, SciPy {want}", w.method, w.p_value);
    }
    assert_eq!(methods.len(), 3, "every null distribution is exercised: {methods:?}");
}
