//! A worker as a Slurm array task runs: its job picked from a task list by
//! SLURM_ARRAY_TASK_ID, its events appended to the run folder's events.jsonl (read back with the
//! scheduler's tail) and nothing on stdout.

mod common;

use common::*;
use oodlab_protocol::Event;

#[test]
fn an_array_task_picks_its_job_and_writes_its_events_to_the_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(dir.path(), &spec_text("tasks", "  baseline: {method: ce}", "  seeds: [0]", ""));
    run_ok(oodlab(&home).arg("run").arg(&spec));
    let run = &statuses(&home, "tasks")[0];
    let run_dir = home.join("runs/tasks").join(run["run_id"].as_str().unwrap());
    std::fs::remove_file(run_dir.join("events.jsonl")).unwrap();
    let tasks = dir.path().join("tasks.txt");
    std::fs::write(&tasks, format!("{}/nope.json\n{}\n", dir.path().display(), run_dir.join("run.json").display())).unwrap();

    let out = oodlab(&home).args(["worker", "--events-file", "--tasks"]).arg(&tasks).env("SLURM_ARRAY_TASK_ID", "1").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "events go to the file: {}", text(&out.stdout));
    let mut tail = oodlab_sched::EventTail::new(run_dir.join("events.jsonl"));
    let events: Vec<Event> = tail.read_new().unwrap().into_iter().map(Result::unwrap).collect();
    assert!(matches!(events.first(), Some(Event::Started { .. })), "{events:?}");
    assert!(matches!(events.last(), Some(Event::Finished { .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::OodMetric { .. })));

    // Task 0 names a job file that is not there: a failure naming it; no task index: a clear error.
    let bad = oodlab(&home).args(["worker", "--events-file", "--tasks"]).arg(&tasks).env("SLURM_ARRAY_TASK_ID", "0").output().unwrap();
    assert_eq!(bad.status.code(), Some(10));
    assert!(text(&bad.stderr).contains("nope.json"), "{}", text(&bad.stderr));
    let none = oodlab(&home).args(["worker", "--tasks"]).arg(&tasks).env_remove("SLURM_ARRAY_TASK_ID").output().unwrap();
    assert!(text(&none.stderr).contains("--tasks needs SLURM_ARRAY_TASK_ID"), "{}", text(&none.stderr));
}
