//! The queue across grids (docs/queue.md): two grids from two processes share one scheduler's
//! slots; a grid's slot limit holds; a higher-priority grid added later goes first; a killed
//! background scheduler, started again, finishes the queue with nothing lost or repeated; `oodlab
//! cancel` stops a grid's runs. No process ever sees `database is locked`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The home's scheduler log and queue, for a failure message.
fn home_state(home: &Path) -> String {
    let log = std::fs::read_to_string(home.join("scheduler.log")).unwrap_or_default();
    let status = oodlab(home).arg("status").output().map(|o| text(&o.stdout)).unwrap_or_default();
    format!("scheduler.log:\n{log}\nstatus:\n{status}")
}

/// A grid of `seeds` baselines, each with an OE fine-tune depending on it, runs of about a second.
fn grid_spec(dir: &Path, name: &str, seeds: &str, extra: &str) -> PathBuf {
    let s = sample().display().to_string();
    let animal = format!(
        "  animal:\n    format: idx\n    classes: 10\n    train: {{images: {s}/animal-mnist/train-images-idx3-ubyte.gz, labels: {s}/animal-mnist/train-labels-idx1-ubyte.gz}}"
    );
    let yaml = sized(
        spec_text(name, "  baseline: {method: ce}\n  oe: {method: oe, init_from: baseline}", &format!("  seeds: {seeds}"), &animal),
        1200,
        2,
    )
    .replace("  ood: [mnist]\n", "  ood: [mnist]\n  outliers: animal\n")
        + extra;
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    write_spec(&folder, &yaml)
}

fn spawn(cmd: &mut std::process::Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", out.status, text(&out.stderr));
    out
}

/// The most runs that were running at once, from the store's start and end times.
fn max_concurrent(rows: &[&serde_json::Value]) -> usize {
    let mut events: Vec<(String, i32)> = Vec::new();
    for r in rows {
        events.push((r["started_at"].as_str().unwrap().to_string(), 1));
        events.push((r["ended_at"].as_str().unwrap().to_string(), -1));
    }
    // At equal times an end comes before a start: the slot was freed first.
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

fn no_lock_errors(outputs: &[&Output]) {
    for o in outputs {
        let all = text(&o.stderr) + &text(&o.stdout);
        assert!(!all.contains("database is locked"), "{all}");
    }
}

#[test]
fn two_grids_from_two_processes_share_the_slots_within_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A: 3 baselines and their fine-tunes; B: 2 and 2, at most 1 slot (resources.jobs).
    let a = grid_spec(dir.path(), "grid-a", "[0, 1, 2]", "");
    // (Another learning rate: runs of the same config are shared between grids and run once.)
    let b = grid_spec(dir.path(), "grid-b", "[0, 1]", "resources: {jobs: 1}\n").to_owned();
    std::fs::write(&b, std::fs::read_to_string(&b).unwrap().replace("train: {epochs: 2,", "train: {optimizer: {lr: 0.02}, epochs: 2,"))
        .unwrap();
    let first = spawn(oodlab(&home).arg("run").arg(&a).args(["--jobs", "2"]));
    wait_for("the first scheduler", || try_statuses(&home, "grid-a").iter().any(|r| r["status"] == "running"));
    let second = finish(spawn(oodlab(&home).arg("run").arg(&b)));
    let first = finish(first);
    assert!(
        text(&second.stderr).contains("a scheduler is running on") && text(&second.stderr).contains("following its progress"),
        "{}",
        text(&second.stderr)
    );
    // The follower saw its grid through and printed its results.
    assert!(text(&second.stderr).contains("`grid-b` left the queue: finished"), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("auroc"), "{}", text(&second.stdout));
    no_lock_errors(&[&first, &second]);

    let (ra, rb) = (statuses(&home, "grid-a"), statuses(&home, "grid-b"));
    for r in ra.iter().chain(&rb) {
        assert_eq!((r["status"].as_str(), r["attempts"].as_i64()), (Some("done"), Some(1)), "every run done exactly once: {r}");
    }
    let all: Vec<&serde_json::Value> = ra.iter().chain(&rb).collect();
    assert_eq!(max_concurrent(&all), 2, "the 2 slots were used together and never exceeded");
    assert_eq!(max_concurrent(&rb.iter().collect::<Vec<_>>()), 1, "grid-b never took more than its 1 slot");
    // Both grids ran side by side: a run of B started before A's last run ended.
    let a_last_end = ra.iter().map(|r| r["ended_at"].as_str().unwrap()).max().unwrap();
    let b_first_start = rb.iter().map(|r| r["started_at"].as_str().unwrap()).min().unwrap();
    assert!(b_first_start < a_last_end, "B waited for all of A");
    let ls = run_ok(oodlab(&home).args(["queue", "ls", "--format", "json"]));
    let q: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let states: Vec<(&str, &str)> =
        q["grids"].as_array().unwrap().iter().map(|g| (g["experiment"].as_str().unwrap(), g["state"].as_str().unwrap())).collect();
    assert!(states.contains(&("grid-a", "finished")) && states.contains(&("grid-b", "finished")), "{states:?}");
}

#[test]
fn a_higher_priority_grid_added_later_starts_before_the_rest_of_a_lower_one() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let low = grid_spec(dir.path(), "low", "[0, 1, 2]", "");
    let high = grid_spec(dir.path(), "high", "[0]", "");
    std::fs::write(
        &high,
        std::fs::read_to_string(&high).unwrap().replace("train: {epochs: 2,", "train: {optimizer: {lr: 0.02}, epochs: 2,"),
    )
    .unwrap();
    let scheduler = spawn(oodlab(&home).arg("run").arg(&low).args(["--jobs", "1"]));
    wait_for("low's first run", || try_statuses(&home, "low").iter().any(|r| r["status"] == "running"));
    let added = run_ok(oodlab(&home).args(["queue", "add"]).arg(&high).args(["--priority", "5"]));
    assert!(text(&added.stderr).contains("in the running scheduler"), "{}", text(&added.stderr));
    let scheduler = finish(scheduler);
    no_lock_errors(&[&scheduler, &added]);
    let (rl, rh) = (statuses(&home, "low"), statuses(&home, "high"));
    assert!(rl.iter().chain(&rh).all(|r| r["status"] == "done" && r["attempts"] == 1));
    // Low's runs that had not started when high was added all started after high's runs.
    let high_last_start = rh.iter().map(|r| r["started_at"].as_str().unwrap()).max().unwrap();
    let low_starts: Vec<&str> = rl.iter().map(|r| r["started_at"].as_str().unwrap()).collect();
    let after = low_starts.iter().filter(|s| **s > high_last_start).count();
    assert!(after >= low_starts.len() - 2, "high went first: high's last start {high_last_start}, low's starts {low_starts:?}");
    let earlier = low_starts.iter().filter(|s| **s < high_last_start).count();
    assert!(earlier <= 2, "at most the run started before high was added, and the one it was waiting behind: {low_starts:?}");
}

#[test]
fn a_killed_background_scheduler_started_again_finishes_the_queue_and_cancel_stops_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let a = grid_spec(dir.path(), "bg-a", "[0, 1, 2]", "");
    let b = grid_spec(dir.path(), "bg-b", "[0]", "");
    let c = grid_spec(dir.path(), "bg-c", "[0, 1, 2, 3]", "");
    // C's runs are long (200 epochs; the cancel comes in the first): on a fast machine a
    // 2-epoch run took 0.2 s and could end between being seen running and the cancel, leaving no
    // run to interrupt.
    std::fs::write(&c, std::fs::read_to_string(&c).unwrap().replace("train: {epochs: 2,", "train: {optimizer: {lr: 0.02}, epochs: 200,"))
        .unwrap();
    let detached = run_ok(oodlab(&home).arg("run").arg(&a).args(["--detach", "--jobs", "1"]));
    let said = text(&detached.stderr);
    assert!(said.contains("a background scheduler (pid"), "{said}");
    let pid: i32 = said.split("(pid ").nth(1).unwrap().split(')').next().unwrap().parse().unwrap();
    run_ok(oodlab(&home).args(["queue", "add"]).arg(&b));
    // Kill it once some runs are done and one is running.
    wait_for(&format!("two finished runs\n{}", home_state(&home)), || {
        try_statuses(&home, "bg-a").iter().filter(|r| r["status"] == "done").count() >= 2
    });
    let status = run_ok(oodlab(&home).arg("status"));
    assert!(text(&status.stdout).contains(&format!("scheduler: pid {pid}")), "{}", text(&status.stdout));
    let before: Vec<serde_json::Value> = statuses(&home, "bg-a").into_iter().filter(|r| r["status"] == "done").collect();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let needle = home.display().to_string();
    wait_for("the orphaned worker to exit", || processes_mentioning(&needle).is_empty());
    assert!(text(&run_ok(oodlab(&home).arg("status")).stdout).contains("scheduler: none running"), "{}", home_state(&home));

    // Started again, it resumes the queue: A's rest, then B.
    let again = run_ok(oodlab(&home).args(["daemon", "--until-empty", "--jobs", "1"]));
    no_lock_errors(&[&again]);
    for name in ["bg-a", "bg-b"] {
        assert!(statuses(&home, name).iter().all(|r| r["status"] == "done"), "{name}: {:?}", statuses(&home, name));
    }
    // Nothing finished before the kill ran again.
    let after = statuses(&home, "bg-a");
    for r in &before {
        let now = after.iter().find(|x| x["run_id"] == r["run_id"]).unwrap();
        assert_eq!((&now["attempts"], &now["ended_at"]), (&r["attempts"], &r["ended_at"]), "{} ran again", r["run_id"]);
    }

    // Cancel: a grid started in the background is stopped mid-way; nothing of it runs afterwards.
    run_ok(oodlab(&home).arg("run").arg(&c).args(["--detach", "--jobs", "1"]));
    wait_for("a running run of bg-c", || try_statuses(&home, "bg-c").iter().any(|r| r["status"] == "running"));
    let state = home_state(&home);
    let cancelled = run_ok(oodlab(&home).args(["cancel", "bg-c"]));
    assert!(text(&cancelled.stderr).contains("cancelled `bg-c`"), "{}", text(&cancelled.stderr));
    wait_for(&format!("the scheduler to stop; before the cancel:\n{state}"), || {
        !text(&run_ok(oodlab(&home).arg("status")).stdout).contains("scheduler: pid")
    });
    let rows = statuses(&home, "bg-c");
    assert!(rows.iter().any(|r| r["status"] == "interrupted" && r["failure"].as_str().unwrap_or("").contains("cancelled")), "{rows:?}");
    assert!(rows.iter().all(|r| r["status"] != "running"), "{rows:?}");
    assert!(rows.iter().filter(|r| r["status"] == "pending").count() >= 4, "the pending runs were dropped: {rows:?}");
    let ls = run_ok(oodlab(&home).args(["queue", "ls", "--format", "json"]));
    let q: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert!(q["grids"].as_array().unwrap().iter().any(|g| g["experiment"] == "bg-c" && g["state"] == "cancelled"), "{q}");
    // Cancelling what is not queued is an input error.
    let bad = oodlab(&home).args(["cancel", "bg-c"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("`bg-c` is not in the queue (its last grid is cancelled)"), "{}", text(&bad.stderr));
}
