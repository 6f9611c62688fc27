//! oodlab's side of scripts/bench/store.sh: records RUNS synthetic runs in a new store the way the
//! scheduler does (a grid's runs registered at once, then per run an attempt started, each event
//! recorded as it arrives, the attempt ended), then times the filtered query `method = lmoe and
//! auroc > 0.5` through the read-only store the dashboard and `oodlab status` use. Prints one JSON
//! line: seconds to record, milliseconds of the query (median of 5), matches.
//!
//!   cargo run --release -p oodlab-store --example bench_store -- /tmp/bench.db 3000 1000
//!
//! The runs are those of scripts/bench/store_mlflow.py (same params, epoch points and metric values).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use oodlab_protocol::Event;
use oodlab_store::{NewRun, Outcome, Store};

const METHODS: [&str; 4] = ["ce", "oe", "mixoe", "lmoe"];
/// Runs per experiment (an ablation grid), registered together as `oodlab run` enqueues a grid.
const GRID: usize = 100;

/// The k-th final metric of run i, in [0, 1): the MLflow side uses the same formula.
fn value(i: usize, k: usize) -> f64 {
    ((i * 7919 + k * 104_729) % 1000) as f64 / 1000.0
}

fn metric_name(k: usize) -> String {
    match k {
        0 => "auroc".into(),
        1 => "fpr95".into(),
        2 => "id_acc".into(),
        _ => format!("m{k:02}"),
    }
}

/// Run i with its 10 params in its config, as a planned run carries its resolved settings.
fn new_run(i: usize) -> NewRun {
    let method = METHODS[i % 4];
    let (mix, consistency) = (["mixup", "cutmix"][i % 2], ["mse", "none"][i % 2]);
    let config = serde_json::json!({
        "method": method, "seed": i % 5, "split": i / 5 % 5, "lr": 0.01 * (1 + i % 3) as f64,
        "weight": 0.5 * (1 + i % 10) as f64, "alpha": 1.0, "mix": mix,
        "epochs": 20, "batch_size": 64, "consistency": consistency,
    });
    NewRun {
        id: format!("{i:012x}"),
        entry: method.into(),
        method: method.into(),
        seed: (i % 5) as i64,
        split: (i / 5 % 5) as i64,
        parent_id: None,
        config_json: config.to_string(),
        grid_json: "{}".into(),
        run_dir: format!("runs/grid/{i:012x}"),
    }
}

/// Run i's epoch events, as its worker sends them (one as each epoch ends), and its final metrics.
fn events(i: usize) -> (Vec<Event>, Vec<Event>) {
    let epochs = (1..=20u32)
        .map(|e| {
            let ef = f64::from(e);
            Event::Epoch {
                epoch: e,
                train_loss: 1.0 / ef,
                train_acc: 1.0 - 1.0 / (ef + 1.0),
                val_acc: Some(1.0 - 1.0 / (ef + 2.0)),
                lr: 0.1 / ef,
                seconds: 1.0,
            }
        })
        .collect();
    let finals = (0..25).map(|k| Event::Metric { name: metric_name(k), value: value(i, k) }).collect();
    (epochs, finals)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (db, runs, timed): (&str, usize, usize) = match args.as_slice() {
        [_, db, runs, timed] => (db, runs.parse().expect("RUNS is a number"), timed.parse().expect("TIMED is a number")),
        _ => {
            eprintln!("usage: bench_store DB RUNS TIMED");
            std::process::exit(2);
        }
    };
    let path = std::path::Path::new(db);
    let store = Store::open(path).await.expect("the store opens");
    let bulk = runs.saturating_sub(timed);

    let mut start = None;
    // The runs before the timed ones are recorded with all their events in one commit: timed
    // too, to weigh grouped commits against one commit per epoch (docs/performance.md).
    let bulk_start = Instant::now();
    let mut bulk_s = 0.0;
    for (g, first) in (0..runs).step_by(GRID).enumerate() {
        let grid: Vec<NewRun> = (first..(first + GRID).min(runs)).map(new_run).collect();
        if first + GRID > bulk && start.is_none() {
            bulk_s = bulk_start.elapsed().as_secs_f64();
            start = Some(Instant::now());
        }
        store.register(&format!("grid-{g}"), "grid.yaml", "name: grid", &grid).await.expect("register");
        for (i, run) in (first..).zip(&grid) {
            let (epochs, finals) = events(i);
            store.start_attempt(&run.id, "cpu:0", "bench", None).await.expect("start");
            if i < bulk {
                // The runs before the timed ones, quickly: everything in one transaction.
                let all: Vec<(&str, &Event)> = epochs.iter().chain(&finals).map(|e| (run.id.as_str(), e)).collect();
                store.record_events(&all).await.expect("events");
            } else {
                // As the scheduler records a worker's events: each epoch's when it ends, the final
                // metrics, which arrive together, in one transaction.
                for e in &epochs {
                    store.record_event(&run.id, e).await.expect("epoch");
                }
                let all: Vec<(&str, &Event)> = finals.iter().map(|e| (run.id.as_str(), e)).collect();
                store.record_events(&all).await.expect("metrics");
            }
            store.end_attempt(&run.id, &Outcome::Done { exit_code: 0 }).await.expect("end");
        }
    }
    let record = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    store.close().await;

    let reader = Store::open_read_only(path).await.expect("the store opens").expect("the store exists");
    // Through the typed API, and as JSON rows through the read-only query the dashboard's
    // files use (the same SQL): what a program gets, and what a web page gets.
    let sql = "SELECT r.id, m.value FROM runs r JOIN run_metrics m ON m.run_id = r.id AND m.name = 'auroc'
               WHERE r.method = 'lmoe' AND m.value > 0.5";
    let (mut times, mut json_times) = (Vec::new(), Vec::new());
    let mut matches = 0;
    for _ in 0..5 {
        let q = Instant::now();
        matches = reader.runs_with_metric_above("lmoe", "auroc", 0.5).await.expect("the query runs").len();
        times.push(q.elapsed().as_secs_f64() * 1000.0);
        let q = Instant::now();
        assert_eq!(reader.query_rows(sql, "", 100_000).await.expect("the query runs").len(), matches);
        json_times.push(q.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    json_times.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({"runs": runs, "timed": timed.min(runs), "record_s": record, "bulk": bulk.min(runs / GRID * GRID), "bulk_s": bulk_s, "query_ms": times[2], "query_json_ms": json_times[2], "matches": matches})
    );
}
