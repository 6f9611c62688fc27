//! A run whose worker fails is recorded failed, with its reason, while the other runs finish;
//! runs that depend on it are blocked; retries count attempts, and wait `resources.retry_delay`.

mod common;

use common::*;

#[test]
fn failed_worker_is_recorded_while_other_runs_finish() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A real failure: an MNIST copy whose test labels file is truncated (valid gzip, short body).
    let extra = broken_dataset(dir.path());
    let methods = "  baseline: {method: ce}\n  bad: {method: ce, data: {ood: [broken]}}\n  after_bad: {method: ce, init_from: bad}";
    let spec = write_spec(
        dir.path(),
        &spec_text("fail", methods, "  seeds: [0]", &extra).replace("grid:", "resources: {retries: 2, retry_delay: 1.5}\ngrid:"),
    );

    let out = oodlab(&home).arg("run").arg(&spec).args(["--jobs", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    let rows = statuses(&home, "fail");
    let by_entry = |e: &str| rows.iter().find(|r| r["entry"] == e).unwrap().clone();
    assert_eq!(by_entry("baseline")["status"], "done");
    let bad = by_entry("bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["attempts"], 3, "two retries were allowed");
    // Each retry waited the delay, doubled after the second failure: 1.5 s, then 3 s.
    let history = run_ok(oodlab(&home).args(["status", "--run", bad["run_id"].as_str().unwrap(), "--format", "json"]));
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let attempts = history["attempt_history"].as_array().unwrap();
    let at = |a: &serde_json::Value, k: &str| chrono::DateTime::parse_from_rfc3339(a[k].as_str().unwrap()).unwrap();
    let gaps: Vec<f64> =
        attempts.windows(2).map(|w| (at(&w[1], "started_at") - at(&w[0], "ended_at")).num_milliseconds() as f64 / 1000.0).collect();
    assert!(gaps.len() == 2 && gaps[0] >= 1.5 && gaps[1] >= 3.0 && gaps[0] < 3.0, "gaps between attempts {gaps:?}");
    assert_eq!(bad["exit_code"], 10);
    let reason = bad["failure"].as_str().unwrap();
    assert!(reason.contains("labels.idx") && reason.contains("need 1000 bytes"), "{reason}");
    let detail = run_detail(&home, bad["run_id"].as_str().unwrap());
    assert!(detail["stderr_tail"].as_str().unwrap().contains("worker failed"), "{detail}");
    // The fine-tune of the failed run never started.
    assert_eq!(by_entry("after_bad")["status"], "pending");
    assert_eq!(by_entry("after_bad")["attempts"], 0);
    assert!(text(&out.stderr).contains("blocked"), "{}", text(&out.stderr));

    // A table made from a store with unfinished runs says so instead of hiding them.
    let table = run_ok(oodlab(&home).args(["compare", "fail", "--format", "markdown"]));
    let table = text(&table.stdout);
    let row = |name: &str| {
        table.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("no row {name}:\n{table}")).to_string()
    };
    assert!(row("bad").contains("pending") && row("bad").ends_with("| 0/1 done |"), "{table}");
    assert!(row("after_bad").contains("pending"), "{table}");
    assert!(row("baseline").contains("± ") && row("baseline").ends_with("| 1 |"), "{table}");

    let results = run_ok(oodlab(&home).args(["results", "fail", "--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&results.stdout).unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["entry"] == "baseline"));
}

/// A scheduler launches workers from its executable's path; when that binary is rebuilt with
/// other training code while a grid runs, a worker would train under run ids made by the old
/// code. It refuses instead, saying what to do.
#[test]
fn a_worker_of_other_training_code_refuses_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(dir.path(), &spec_text("versions", "  baseline: {method: ce}", "  seeds: [0]", ""));
    run_ok(oodlab(&home).arg("run").arg(&spec));
    let id = statuses(&home, "versions")[0]["run_id"].as_str().unwrap().to_string();
    let job_path = home.join("runs/versions").join(&id).join("run.json");
    let mut job: serde_json::Value = serde_json::from_slice(&std::fs::read(&job_path).unwrap()).unwrap();
    job["config"]["code_version"] = "train-0.0.0-0".into();
    let stale = dir.path().join("stale.json");
    std::fs::write(&stale, job.to_string()).unwrap();
    let out = oodlab(&home).arg("worker").arg("--run").arg(&stale).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    let events = text(&out.stdout);
    assert!(events.contains("was planned with `train-0.0.0-0`") && events.contains("oodlab cancel versions"), "{events}");
    assert!(!events.contains("\"started\""), "it refused before training: {events}");
}
