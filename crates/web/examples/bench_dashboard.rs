//! Server time of the dashboard's heaviest routes on a store of N runs (default 10,000) against
//! the same routes on a store of 100 runs, measured in the same process through the router (no
//! network). Used by scripts/bench/dashboard.sh; figures go to docs/performance.md.
//!
//! The store is written through the store's own API as the scheduler writes it: a grid of
//! 4 methods × seeds × learning rates, each run done with 10 epochs, ID accuracy and 3 scores ×
//! 2 OOD sets of metrics; the runs of seed 0 also get saved scores for the ROC panel.

// A benchmark: printing its figures is its job.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use oodlab_protocol::Event;
use oodlab_store::{NewRun, Outcome, Store};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tower::ServiceExt;

// The allocator of the oodlab binary, which serves the dashboard.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const METHODS: [&str; 4] = ["ce", "oe", "mixoe", "lmoe"];

fn lcg(state: &mut u64) -> f64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

async fn fill(home: &Path, runs: usize) {
    std::fs::create_dir_all(home.join("runs")).unwrap();
    let store = Store::open(&home.join("oodlab.db")).await.unwrap();
    let seeds = 25;
    let lrs = runs.div_ceil(METHODS.len() * seeds);
    let mut planned = Vec::with_capacity(runs);
    'grid: for (m, method) in METHODS.iter().enumerate() {
        for l in 0..lrs {
            for seed in 0..seeds {
                if planned.len() == runs {
                    break 'grid;
                }
                let lr = 0.001 * (l + 1) as f64;
                let id = format!("{m}{l:04}{seed:03}");
                let config = serde_json::json!({"seed": seed, "split": 0, "settings": {"data": {"id": "fashion"}, "train": {"optimizer": {"lr": lr}}}});
                planned.push(NewRun {
                    id: id.clone(),
                    entry: method.to_string(),
                    method: method.to_string(),
                    seed: seed as i64,
                    split: 0,
                    parent_id: None,
                    config_json: config.to_string(),
                    grid_json: serde_json::json!({"train.optimizer.lr": lr}).to_string(),
                    run_dir: home.join("runs/bench").join(&id).display().to_string(),
                });
            }
        }
    }
    store.register("bench", "bench.yaml", "name: bench", &planned).await.unwrap();
    let mut rng = 7u64;
    for r in &planned {
        store.start_attempt(&r.id, "cpu:0", "host", None).await.unwrap();
        for epoch in 1..=10 {
            let e = Event::Epoch { epoch, train_loss: 2.0 / epoch as f64, train_acc: 0.9, val_acc: None, lr: 0.1, seconds: 1.0 };
            store.record_event(&r.id, &e).await.unwrap();
        }
        store.record_event(&r.id, &Event::Metric { name: "id_acc".into(), value: 0.8 + 0.1 * lcg(&mut rng) }).await.unwrap();
        for score in ["msp", "maxlogit", "energy"] {
            for set in ["heldout", "mnist"] {
                let auroc = 0.5 + 0.4 * lcg(&mut rng);
                let e = Event::OodMetric {
                    ood_set: set.into(),
                    score: score.into(),
                    auroc,
                    fpr95: 1.0 - auroc,
                    aupr_in: auroc,
                    aupr_out: auroc,
                    tnr95: Some(auroc),
                    n_id: 600,
                    n_ood: 400,
                };
                store.record_event(&r.id, &e).await.unwrap();
            }
        }
        store.end_attempt(&r.id, &Outcome::Done { exit_code: 0 }).await.unwrap();
        if r.seed == 0 {
            let dir = Path::new(&r.run_dir);
            std::fs::create_dir_all(dir).unwrap();
            let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
            for set in ["id", "heldout", "mnist"] {
                let shift = if set == "id" { 0.2 } else { 0.0 };
                for score in ["msp", "maxlogit", "energy"] {
                    let v: Vec<u8> = (0..600).flat_map(|_| ((lcg(&mut rng) + shift) as f32).to_le_bytes()).collect();
                    tensors.push((format!("{set}.{score}"), v, vec![600]));
                }
                let logits: Vec<u8> = (0..600 * 6).flat_map(|_| (lcg(&mut rng) as f32).to_le_bytes()).collect();
                tensors.push((format!("{set}.logits"), logits, vec![600, 6]));
            }
            let views: Vec<(String, TensorView)> =
                tensors.iter().map(|(n, b, s)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
            safetensors::serialize_to_file(views, None, &dir.join("scores.safetensors")).unwrap();
        }
    }
    store.close().await;
}

/// Median and max milliseconds of `n` requests of `uri`.
async fn time(router: &axum::Router, uri: &str, n: usize) -> (f64, f64, usize) {
    let mut ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let response = router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        assert!(response.status().is_success(), "{uri}: {}", response.status());
        bytes = axum::body::to_bytes(response.into_body(), 256 << 20).await.unwrap().len();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1], bytes)
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args().skip_while(|a| a != "--runs").nth(1).map(|v| v.parse().expect("--runs N")).unwrap_or(10_000);
    let repeats = 7;
    let routes = [
        ("experiment page", "/experiments/bench"),
        (
            "experiment page, done runs by a config field, page 6",
            "/experiments/bench?status=done&sort=train.optimizer.lr&desc=1&offset=500",
        ),
        ("experiment page, training dashboard", "/experiments/bench?dashboard=training"),
        ("comparison table (page)", "/experiments/bench/compare?metric=auroc&score=msp"),
        ("comparison table (JSON)", "/api/experiments/bench/compare?metric=fpr95&score=energy"),
        ("comparison by lr (JSON)", "/api/experiments/bench/compare?metric=auroc&rows=train.optimizer.lr"),
        ("progress (polled by the page)", "/api/experiments/bench"),
        ("experiments list", "/"),
    ];
    // `--only ROUTE-PREFIX --repeat N`: time one route many times (for a profiler).
    if let Some(only) = std::env::args().skip_while(|a| a != "--only").nth(1) {
        let n: usize = std::env::args().skip_while(|a| a != "--repeat").nth(1).and_then(|v| v.parse().ok()).unwrap_or(20);
        let home = Path::new(&std::env::args().skip_while(|a| a != "--keep").nth(1).expect("--only needs --keep DIR")).to_path_buf();
        let router = oodlab_web::router(oodlab_web::AppState::open(&home, None).await.unwrap());
        let (m, x, _) = time(&router, &only, n).await;
        println!("{only}: median {m:.1} ms, max {x:.1} ms");
        return;
    }
    let mut results = Vec::new();
    // `--keep DIR` keeps (and reuses) the large store in DIR, for profiling its queries.
    let keep = std::env::args().skip_while(|a| a != "--keep").nth(1);
    for n in [100, runs] {
        let dir = tempfile::tempdir().unwrap();
        let home = match &keep {
            Some(k) if n == runs => Path::new(k).to_path_buf(),
            _ => dir.path().join("home"),
        };
        let t = Instant::now();
        if !home.join("oodlab.db").exists() {
            fill(&home, n).await;
        }
        let fill_s = t.elapsed().as_secs_f64();
        let state = oodlab_web::AppState::open(&home, None).await.unwrap();
        let router = oodlab_web::router(state);
        let mut row = Vec::new();
        for (name, uri) in routes {
            let _ = time(&router, uri, 1).await; // warm-up
            row.push((name, time(&router, uri, repeats).await));
        }
        results.push((n, fill_s, row));
    }
    let (small, _, base) = &results[0];
    let (big, fill_s, rows) = &results[1];
    println!("dashboard server time, median (max) of {repeats} requests through the router; store of {big} runs written in {fill_s:.1} s");
    println!("{:<56} {:>22} {:>22} {:>8}", "route", format!("{small} runs (ms)"), format!("{big} runs (ms)"), "ratio");
    for ((name, (m0, _, _)), (_, (m1, x1, bytes))) in base.iter().zip(rows) {
        println!("{name:<56} {m0:>22.1} {:>22} {:>8.1}   ({} kB)", format!("{m1:.1} ({x1:.1})"), m1 / m0, bytes / 1024);
    }
}
