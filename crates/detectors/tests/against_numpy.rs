//! Every detector against the NumPy port of its OpenOOD reference
//! (scripts/reference/detectors_numpy.py, fixtures/detectors.json): structured features (three
//! Gaussian classes, ReLU ties at 0, a coordinate that never varies so the covariance is
//! rank-deficient), queries near and far from the classes, k larger than a class. To 1e-6 of the
//! largest magnitude.

use oodlab_detectors::{ash, gen, knn, mahalanobis, percentile, react, rmds, Ash, ClassGaussians, Linear, Rows, Vim};
use serde_json::Value;

struct Fixture {
    v: Value,
    dim: usize,
    classes: usize,
}

impl Fixture {
    fn load() -> Fixture {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/detectors.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let (dim, classes) = (v["dim"].as_u64().unwrap() as usize, v["classes"].as_u64().unwrap() as usize);
        Fixture { v, dim, classes }
    }

    fn f32s(&self, key: &str) -> Vec<f32> {
        self.v[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    fn expected(&self, key: &str) -> Vec<f64> {
        self.v["expected"][key].as_array().unwrap_or_else(|| panic!("no {key}")).iter().map(|x| x.as_f64().unwrap()).collect()
    }

    fn last(&self) -> Linear {
        Linear::new(self.f32s("weight"), self.f32s("bias"), self.dim).unwrap()
    }
}

fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite() && (g - w).abs() <= 1e-6 * scale, "{what}[{i}]: {g}, expected {w} (scale {scale})");
    }
}

#[test]
fn logit_scores_match_numpy() {
    let f = Fixture::load();
    let logits = f.f32s("logits");
    let rows = Rows::new(&logits, f.classes).unwrap();
    close("gen gamma 0.1 M 2", &gen(rows, 0.1, 2).unwrap(), &f.expected("gen_0.1_2"));
    // M above the number of classes: every probability.
    close("gen gamma 0.5 M 100", &gen(rows, 0.5, 100).unwrap(), &f.expected("gen_0.5_100"));
}

#[test]
fn knn_matches_numpy() {
    let f = Fixture::load();
    let (train, queries) = (f.f32s("train"), f.f32s("queries"));
    let (t, q) = (Rows::new(&train, f.dim).unwrap(), Rows::new(&queries, f.dim).unwrap());
    // k = 25 is larger than a class (20 training features each).
    for k in [1, 5, 25] {
        close(&format!("knn k {k}"), &knn(t, q, k).unwrap(), &f.expected(&format!("knn_{k}")));
    }
    assert!(knn(t, q, 61).is_err(), "k above the training features is refused");
}

#[test]
fn react_and_ash_match_numpy() {
    let f = Fixture::load();
    let (train, queries) = (f.f32s("train"), f.f32s("queries"));
    let q = Rows::new(&queries, f.dim).unwrap();
    let threshold = percentile(&train, 90.0).unwrap();
    close("react threshold", &[threshold], &f.expected("react_90_threshold"));
    close("react", &react(q, &f.last(), threshold).unwrap(), &f.expected("react_90"));
    // 65%: k = 6 - round(3.9) = 2; 75%: k = 6 - round(4.5) = 2 (half to even; half away from 0
    // would keep 1), with ties at 0.
    for p in [65.0, 75.0] {
        for (name, variant) in [("b", Ash::B { percentile: p }), ("p", Ash::P { percentile: p }), ("s", Ash::S { percentile: p })] {
            close(&format!("ash {name} {p}"), &ash(q, &f.last(), variant).unwrap(), &f.expected(&format!("ash_{name}_{p}")));
        }
    }
}

#[test]
fn gaussian_scores_match_numpy_on_a_rank_deficient_covariance() {
    let f = Fixture::load();
    let (train, queries) = (f.f32s("train"), f.f32s("queries"));
    let labels: Vec<usize> = f.v["labels"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect();
    let g = ClassGaussians::fit(Rows::new(&train, f.dim).unwrap(), &labels, f.classes).unwrap();
    let q = Rows::new(&queries, f.dim).unwrap();
    close("mahalanobis", &mahalanobis(&g, q).unwrap(), &f.expected("mahalanobis"));
    close("rmds", &rmds(&g, q).unwrap(), &f.expected("rmds"));
}

#[test]
fn vim_matches_numpy() {
    let f = Fixture::load();
    let (train, queries) = (f.f32s("train"), f.f32s("queries"));
    let (t, q) = (Rows::new(&train, f.dim).unwrap(), Rows::new(&queries, f.dim).unwrap());
    for dim in [2, 4] {
        let vim = Vim::fit(t, &f.last(), dim).unwrap();
        close(&format!("vim {dim} alpha"), &[vim.alpha()], &f.expected(&format!("vim_{dim}_alpha")));
        close(&format!("vim {dim}"), &vim.scores(q).unwrap(), &f.expected(&format!("vim_{dim}")));
    }
    assert!(Vim::fit(t, &f.last(), 6).is_err(), "a principal subspace as large as the features leaves no residual");
}
