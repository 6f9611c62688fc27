//! The Parzen estimators against Optuna's own `_ParzenEstimator` on the same observations:
//! fixtures from scripts/reference/tpe_optuna.py (Optuna 5.1.0 from PyPI).

use oodlab_tune::tpe::Parzen;
use oodlab_tune::Dist;
use serde_json::Value;

#[test]
fn log_densities_match_optunas_parzen_estimator() {
    let fixture: Value = serde_json::from_str(include_str!("fixtures/optuna_parzen.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<f64>>();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (dist, internal): (Dist, fn(f64) -> f64) = if let Some(n) = case["choices"].as_u64() {
            (Dist::Choice((0..n).map(Value::from).collect()), |x| x)
        } else {
            let (low, high) = (case["low"].as_f64().unwrap(), case["high"].as_f64().unwrap());
            if case["log"].as_bool().unwrap() {
                (Dist::LogUniform { low, high }, f64::ln)
            } else {
                (Dist::Uniform { low, high }, |x| x)
            }
        };
        let observed: Vec<f64> = floats(&case["observed"]).into_iter().map(internal).collect();
        let parzen = Parzen::fit(&dist, &observed, 1.0);
        for (x, expected) in floats(&case["points"]).into_iter().zip(floats(&case["log_pdf"])) {
            let ours = parzen.log_pdf(internal(x));
            assert!((ours - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{name}: at {x}: oodlab {ours}, Optuna {expected}");
        }
    }
}
