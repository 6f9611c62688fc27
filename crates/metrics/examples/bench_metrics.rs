//! Times `ood_metrics` on scores from two files of little-endian f64 (written by
//! scripts/bench/metrics_sklearn.py) and prints the metrics and the best time.
//! Usage: bench_metrics ID.bin OOD.bin REPEATS

#![allow(clippy::print_stdout)]

use std::time::Instant;

fn read(path: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (id, ood) = (read(&args[1]), read(&args[2]));
    let repeats: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(5);
    let mut best = f64::INFINITY;
    let mut m = None;
    let mut tnr = 0.0;
    for _ in 0..repeats {
        let t = Instant::now();
        m = Some(oodlab_metrics::ood_metrics(&id, &ood).unwrap());
        tnr = oodlab_metrics::tnr_at_tpr95(&id, &ood).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let m = m.unwrap();
    println!(
        "oodlab n={} auroc={:.12} fpr95={:.12} aupr_in={:.12} aupr_out={:.12} tnr95={:.12} best_seconds={best:.6}",
        id.len() + ood.len(),
        m.auroc,
        m.fpr95,
        m.aupr_in,
        m.aupr_out,
        tnr
    );
}
