//! SIGINT during a grid stops every worker, marks their runs interrupted, keeps finished runs,
//! and a rerun completes only the rest.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn count(rows: &[serde_json::Value], status: &str) -> usize {
    rows.iter().filter(|r| r["status"] == status).count()
}

#[test]
fn sigint_leaves_no_worker_and_a_rerun_completes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Runs of a few seconds each, so that the signal lands while one is running.
    let yaml = sized(spec_text("sig", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3]", ""), 1500, 3);
    let spec = write_spec(dir.path(), &yaml);
    let mut child = oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]).stderr(std::process::Stdio::piped()).spawn().unwrap();

    // Wait until one run is done and the next is running.
    wait_for("the grid to progress", || {
        let rows = try_statuses(&home, "sig");
        count(&rows, "done") >= 1 && count(&rows, "running") == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = statuses(&home, "sig");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "oodlab run exits with the interrupted code");

    let needle = home.display().to_string();
    assert!(processes_mentioning(&needle).is_empty(), "workers left behind: {:?}", processes_mentioning(&needle));

    let after = statuses(&home, "sig");
    assert_eq!(count(&after, "running"), 0, "no run stays running: {after:?}");
    let done_before: Vec<_> =
        before.iter().filter(|r| r["status"] == "done").map(|r| (r["run_id"].clone(), r["ended_at"].clone())).collect();
    // A run may have finished between the snapshot and the signal; none that was done is lost.
    for (id, ended) in &done_before {
        let r = after.iter().find(|r| &r["run_id"] == id).unwrap();
        assert_eq!((&r["status"], &r["ended_at"]), (&serde_json::json!("done"), ended));
    }
    assert!(count(&after, "interrupted") >= 1, "{after:?}");
    assert_eq!(count(&after, "done") + count(&after, "interrupted") + count(&after, "pending"), 4);

    let done_after_signal: Vec<_> =
        after.iter().filter(|r| r["status"] == "done").map(|r| (r["run_id"].clone(), r["ended_at"].clone())).collect();
    let rerun = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    let log = text(&rerun.stderr);
    let final_rows = statuses(&home, "sig");
    assert_eq!(count(&final_rows, "done"), 4, "{final_rows:?}");
    for (id, ended) in &done_after_signal {
        let r = final_rows.iter().find(|r| &r["run_id"] == id).unwrap();
        assert_eq!(&r["ended_at"], ended, "a finished run was done twice");
        assert_eq!(r["attempts"], 1);
        assert!(!log.contains(&format!("start  {}", id.as_str().unwrap())), "{log}");
    }
    // Each run that did not finish before is started exactly once by the rerun.
    assert_eq!(log.matches("start  ").count(), 4 - done_after_signal.len(), "{log}");
    let results = run_ok(oodlab(&home).args(["results", "sig", "--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&results.stdout).unwrap();
    assert_eq!(rows.len(), 4 * 3 * 2);
}
