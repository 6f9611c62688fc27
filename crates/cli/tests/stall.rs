//! Stalls: a worker frozen in the middle of its run (SIGSTOP: it sends no heartbeat and computes
//! nothing) is killed after the grid's `resources.stall_timeout`, its attempt recorded `stalled`
//! with the reason, and the run retried from its mid-run checkpoint, ending as a run that never
//! stalled.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn results(home: &std::path::Path) -> Vec<String> {
    let out = run_ok(oodlab(home).args(["results", "stall", "--format", "json"]));
    let mut v: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {} {} {}", r["run_id"], r["score"], r["ood_set"], r["auroc"], r["fpr95"]))
        .collect();
    v.sort();
    v
}

#[test]
fn a_frozen_worker_is_killed_as_stalled_and_its_run_resumes_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = sized(spec_text("stall", "  baseline: {method: ce}", "  seeds: [0]", ""), 3000, 4)
        .replace("model: {channels: [4, 8, 8]}", "model: {channels: [16, 32, 32]}")
        .replace("grid:", "resources: {stall_timeout: 2, retries: 1, grace_seconds: 1, retry_delay: 0.5}\nNOTIFY\ngrid:");
    let told = dir.path().join("told.jsonl");
    let yaml = yaml.replace("NOTIFY", &format!("notify: {{command: 'cat >> {}', on: [run_stalled]}}", told.display()));
    let spec = write_spec(dir.path(), &yaml);
    let (home, calm) = (dir.path().join("home"), dir.path().join("calm"));
    // Heartbeats every half second keep a working run clear of a 2 s timeout.
    run_ok(oodlab(&calm).arg("run").arg(&spec).args(["--jobs", "1", "--threads", "2"]));
    let calm_rows = statuses(&calm, "stall");
    assert_eq!((calm_rows[0]["status"].as_str(), calm_rows[0]["attempts"].as_i64()), (Some("done"), Some(1)), "{calm_rows:?}");

    let child = oodlab(&home)
        .arg("run")
        .arg(&spec)
        .args(["--jobs", "1", "--threads", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the run to start", || try_statuses(&home, "stall").first().is_some_and(|r| r["status"] == "running"));
    let id = statuses(&home, "stall")[0]["run_id"].as_str().unwrap().to_string();
    let folder = std::path::PathBuf::from(run_detail(&home, &id)["run_dir"].as_str().unwrap());
    wait_for("the first epoch's checkpoint", || folder.join("resume.safetensors").exists());
    let pid = run_detail(&home, &id)["pid"].as_i64().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();

    let out = child.wait_with_output().unwrap();
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("stalled: no heartbeat from the worker for 2 s (resources.stall_timeout) (retrying)"), "{said}");
    assert!(said.contains(&format!("resume {id} baseline seed=0 split=0 from its mid-run checkpoint")), "{said}");
    let v: serde_json::Value =
        serde_json::from_slice(&run_ok(oodlab(&home).args(["status", "--run", &id, "--format", "json"])).stdout).unwrap();
    let attempts = v["attempt_history"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["status"], "stalled");
    assert!(attempts[0]["failure"].as_str().unwrap().starts_with("stalled: no heartbeat"), "{attempts:?}");
    assert_eq!(attempts[1]["status"], "done");
    assert!(attempts[1]["resumed_epoch"].as_i64().unwrap() >= 1, "{attempts:?}");
    // No worker left behind (the frozen one was killed), and the results are the calm run's.
    assert!(processes_mentioning(&home.display().to_string()).is_empty());
    assert_eq!(results(&home), results(&calm));
    // Told once, of the stall (not of the grid's end: `on` asked for stalls only).
    let told: Vec<serde_json::Value> = std::fs::read_to_string(&told).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!((told[0]["event"].as_str(), told[0]["run_id"].as_str()), (Some("run_stalled"), Some(id.as_str())));
    assert!(told[0]["reason"].as_str().unwrap().starts_with("stalled: no heartbeat"));
}
