//! A home with a small experiment written through the store's own API, and saved scores whose
//! ROC and AUROC are worked out by hand.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use oodlab_protocol::Event;
use oodlab_store::{NewRun, Outcome, Store};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tower::ServiceExt;

/// ID and held-out scores of run `a1`: 14 of the 16 (ID, OOD) pairs are ordered, AUROC 0.875.
pub const ID_MSP: [f32; 4] = [0.9, 0.8, 0.7, 0.6];
pub const HELDOUT_MSP: [f32; 4] = [0.75, 0.5, 0.4, 0.3];

fn run(home: &Path, id: &str, entry: &str, method: &str, seed: i64, lr: f64) -> NewRun {
    let config = serde_json::json!({
        "seed": seed,
        "split": 0,
        "settings": {"data": {"id": "fashion"}, "train": {"epochs": 3, "optimizer": {"lr": lr}}, "method": {"name": method}},
    });
    NewRun {
        id: id.into(),
        entry: entry.into(),
        method: method.into(),
        seed,
        split: 0,
        parent_id: None,
        config_json: config.to_string(),
        grid_json: "{}".into(),
        run_dir: home.join("runs/exp").join(id).display().to_string(),
    }
}

pub fn ood(set: &str, score: &str, auroc: f64) -> Event {
    Event::OodMetric {
        ood_set: set.into(),
        score: score.into(),
        auroc,
        fpr95: 0.5,
        aupr_in: 0.6,
        aupr_out: 0.7,
        tnr95: Some(0.4),
        n_id: 4,
        n_ood: 4,
    }
}

/// Scores are one value per image; logits have two classes here.
fn shape(name: &str, len: usize) -> Vec<usize> {
    if name.ends_with(".logits") {
        vec![len / 2, 2]
    } else {
        vec![len]
    }
}

pub fn write_scores(dir: &Path, tensors: &[(&str, &[f32])]) {
    std::fs::create_dir_all(dir).unwrap();
    let bytes: Vec<(String, Vec<u8>, usize)> =
        tensors.iter().map(|(n, v)| (n.to_string(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len())).collect();
    let views: Vec<(String, TensorView)> =
        bytes.iter().map(|(n, b, len)| (n.clone(), TensorView::new(Dtype::F32, shape(n, *len), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &dir.join("scores.safetensors")).unwrap();
}

/// Experiment `exp`: a1 done (3 epochs, scores), a2 failed (out of memory), a3 pending, a4
/// running; b1 of experiment `other` done.
pub async fn home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("runs")).unwrap();
    let store = Store::open(&home.join("oodlab.db")).await.unwrap();
    let runs = vec![
        run(&home, "a1", "baseline", "ce", 0, 0.1),
        run(&home, "a2", "oe", "oe", 0, 0.01),
        run(&home, "a3", "oe", "oe", 1, 0.01),
        run(&home, "a4", "oe", "oe", 2, 0.01),
    ];
    store.register("exp", "exp.yaml", "name: exp", &runs).await.unwrap();
    store.register("other", "other.yaml", "name: other", &[run(&home, "b1", "baseline", "ce", 0, 0.1)]).await.unwrap();

    store.start_attempt("a1", "cpu:0", "host", None).await.unwrap();
    for (epoch, loss) in [(1, 1.5), (2, 1.0), (3, 0.75)] {
        let e = Event::Epoch { epoch, train_loss: loss, train_acc: 0.5 + 0.1 * epoch as f64, val_acc: None, lr: 0.1, seconds: 2.0 };
        store.record_event("a1", &e).await.unwrap();
    }
    store.record_event("a1", &Event::Metric { name: "id_acc".into(), value: 0.9 }).await.unwrap();
    store.record_event("a1", &ood("heldout", "msp", 0.875)).await.unwrap();
    store.end_attempt("a1", &Outcome::Done { exit_code: 0 }).await.unwrap();
    let id: Vec<f32> = ID_MSP.to_vec();
    let heldout: Vec<f32> = HELDOUT_MSP.to_vec();
    // Logits (4 images × 2 classes) of each set: the sets a run evaluated are read from them.
    let id_logits = [2.0f32, 0.0, 1.5, 0.5, 1.0, 1.0, 0.5, 1.5];
    let heldout_logits = [1.0f32, 0.8, 0.2, 0.1, 0.3, 0.5, 0.0, 0.4];
    write_scores(
        &home.join("runs/exp/a1"),
        &[("id.msp", &id), ("heldout.msp", &heldout), ("id.logits", &id_logits), ("heldout.logits", &heldout_logits)],
    );
    std::fs::write(home.join("runs/exp/a1/events.jsonl"), "{}\n").unwrap();

    store.start_attempt("a2", "cpu:1", "host", None).await.unwrap();
    let failed = Outcome::Failed { exit_code: Some(1), reason: "CUDA out of memory at epoch 2".into(), stderr_tail: "Traceback".into() };
    store.end_attempt("a2", &failed).await.unwrap();
    store.start_attempt("a4", "cpu:1", "host", None).await.unwrap();

    store.start_attempt("b1", "cpu:0", "host", None).await.unwrap();
    store.record_event("b1", &ood("heldout", "msp", 0.6)).await.unwrap();
    store.end_attempt("b1", &Outcome::Done { exit_code: 0 }).await.unwrap();
    store.close().await;
    (dir, home)
}

/// GET `uri` through the router: status and body as text.
pub async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).to_string())
}

pub async fn get_json(router: &axum::Router, uri: &str) -> serde_json::Value {
    let (status, body) = get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}"))
}

/// The repo's dashboards folder.
pub fn repo_dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards")
}
