//! oodlab's side of scripts/bench/detectors.sh: reads the features the reference script wrote,
//! times KNN, the Mahalanobis/RMDS fit and scoring, and ViM's fit and scoring, and checks the
//! scores against the reference's. Prints one JSON object.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use oodlab_detectors::{knn, mahalanobis, rmds, ClassGaussians, Linear, Rows, Vim};

fn read(dir: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!("{dir}/{name}.bin")).unwrap_or_else(|e| panic!("{dir}/{name}.bin: {e}"))
}

fn read_f32(dir: &str, name: &str) -> Vec<f32> {
    read(dir, name).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn read_f64(dir: &str, name: &str) -> Vec<f64> {
    read(dir, name).chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The largest difference from the reference, relative to the reference's largest magnitude.
fn difference(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max) / scale
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: bench_detectors DIR");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/meta.json")).unwrap()).unwrap();
    let get = |k: &str| meta[k].as_u64().unwrap() as usize;
    let (d, classes, k, vim_dim) = (get("dim"), get("classes"), get("k"), get("vim_dim"));
    let (train, queries) = (read_f32(&dir, "train"), read_f32(&dir, "queries"));
    let labels: Vec<usize> = read(&dir, "labels").chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as usize).collect();
    let last = Linear::new(read_f32(&dir, "weight"), read_f32(&dir, "bias"), d).unwrap();
    let (t, q) = (Rows::new(&train, d).unwrap(), Rows::new(&queries, d).unwrap());

    let start = Instant::now();
    let knn_scores = knn(t, q, k).unwrap();
    let knn_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let g = ClassGaussians::fit(t, &labels, classes).unwrap();
    let (m, r) = (mahalanobis(&g, q).unwrap(), rmds(&g, q).unwrap());
    let gauss_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let v = Vim::fit(t, &last, vim_dim).unwrap().scores(q).unwrap();
    let vim_s = start.elapsed().as_secs_f64();

    let out = serde_json::json!({
        "times": {"knn": knn_s, "mahalanobis+rmds": gauss_s, "vim": vim_s},
        "difference": {
            "knn": difference(&knn_scores, &read_f64(&dir, "ref_knn")),
            "mahalanobis": difference(&m, &read_f64(&dir, "ref_mahalanobis")),
            "rmds": difference(&r, &read_f64(&dir, "ref_rmds")),
            "vim": difference(&v, &read_f64(&dir, "ref_vim")),
        },
    });
    println!("{out}");
}
