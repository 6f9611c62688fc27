//! The metrics agree with scikit-learn (as OpenOOD v1.5 calls it) on score sets with many ties.
//! Reference values: `scripts/reference/metrics_sklearn.py`, kept in `fixtures/`.

use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    id: Vec<f64>,
    ood: Vec<f64>,
    auroc: f64,
    fpr95: f64,
    aupr_in: f64,
    aupr_out: f64,
}

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

/// Cases: heavy ties, unbalanced sizes both ways, near-perfect separation (see the script).
#[test]
fn metrics_match_sklearn_on_tied_unbalanced_and_separated_scores() {
    let text = include_str!("fixtures/sklearn_reference.json");
    let reference: Reference = serde_json::from_str(text).unwrap();
    assert_eq!(reference.cases.len(), 10);
    for (i, case) in reference.cases.iter().enumerate() {
        let got = oodlab_metrics::ood_metrics(&case.id, &case.ood).unwrap();
        for (name, g, want) in [
            ("auroc", got.auroc, case.auroc),
            ("fpr95", got.fpr95, case.fpr95),
            ("aupr_in", got.aupr_in, case.aupr_in),
            ("aupr_out", got.aupr_out, case.aupr_out),
        ] {
            assert!((g - want).abs() < 1e-9, "case {i} {name}: got {g}, sklearn {want}");
        }
    }
}
