//! One scheduler per home: a second scheduler (`oodlab daemon`) on a busy home is refused without
//! touching it (a second `oodlab run` queues its grid there instead: tests/queue.rs), and a
//! scheduler that dies (SIGKILL) releases the home; its orphaned worker stops by itself, and the
//! next `oodlab run` resumes.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[test]
fn a_busy_home_is_refused_and_a_killed_scheduler_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let yaml = sized(spec_text("lock", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3, 4, 5]", ""), 1500, 6);
    let spec = write_spec(dir.path(), &yaml);
    let log = dir.path().join("first.log");
    let mut first = oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    wait_for("a running run", || {
        if let Some(code) = first.try_wait().unwrap() {
            panic!("the first scheduler ended ({code}) before the test saw a running run:\n{}", std::fs::read_to_string(&log).unwrap());
        }
        try_statuses(&home, "lock").iter().any(|r| r["status"] == "running")
    });

    let before = statuses(&home, "lock");
    let second = oodlab(&home).args(["daemon", "--until-empty"]).output().unwrap();
    assert_eq!(second.status.code(), Some(4), "{}", text(&second.stderr));
    let err = text(&second.stderr);
    assert!(err.contains("another scheduler is running") && err.contains(&format!("pid {}", first.id())), "{err}");
    // The first scheduler went on meanwhile (the refusal waits 2 s for a passing holder), alone:
    // no run started twice, never more than its one slot busy.
    let after = statuses(&home, "lock");
    assert!(after.iter().all(|r| r["attempts"].as_i64().unwrap() <= 1), "{after:?}");
    assert!(after.iter().filter(|r| r["status"] == "running").count() <= 1, "{after:?}");
    assert!(before.iter().filter(|r| r["attempts"] == 1).count() <= after.iter().filter(|r| r["attempts"] == 1).count());

    kill(Pid::from_raw(first.id() as i32), Signal::SIGKILL).unwrap();
    first.wait().unwrap();
    // The orphaned worker notices the closed pipe at its next progress event and exits.
    let needle = home.display().to_string();
    wait_for("the orphaned worker to exit", || processes_mentioning(&needle).is_empty());

    let rerun = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    let rows = statuses(&home, "lock");
    assert!(rows.iter().all(|r| r["status"] == "done"), "{rows:?}\n{}", text(&rerun.stderr));
    // The run that was running when the scheduler died was started again.
    assert!(rows.iter().any(|r| r["attempts"] == 2), "{rows:?}");
}
