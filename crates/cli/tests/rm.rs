//! `oodlab rm`: an experiment leaves the store with its own runs and their folders; a run
//! another experiment shares stays, with its results; it asks first, names what exists when the
//! name is wrong, and refuses while a scheduler serves the home. `oodlab gc`: run folders no run
//! in the store owns, and only those.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

/// The experiments `oodlab status` lists (its first table, first column).
fn experiments(home: &std::path::Path) -> Vec<String> {
    let out = text(&run_ok(oodlab(home).arg("status")).stdout);
    out.lines().skip(1).take_while(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().next().unwrap().to_string()).collect()
}

#[test]
fn rm_removes_an_experiment_and_its_own_runs_but_never_a_shared_one() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // `a` and `b` share their baseline (same config, same run id); `a`'s second seed is its own.
    let a = write_spec(dir.path(), &spec_text("a", "  baseline: {method: ce}", "  seeds: [0, 1]", ""));
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = write_spec(&b_dir, &spec_text("b", "  baseline: {method: ce}", "  seeds: [0]", ""));
    run_ok(oodlab(&home).arg("run").arg(&a));
    run_ok(oodlab(&home).arg("run").arg(&b));
    let a_runs = statuses(&home, "a");
    let shared = statuses(&home, "b")[0]["run_id"].as_str().unwrap().to_string();
    let own: Vec<String> = a_runs.iter().map(|r| r["run_id"].as_str().unwrap().to_string()).filter(|id| *id != shared).collect();
    assert_eq!(own.len(), 1, "{a_runs:?}");
    let folder = |id: &str| run_detail(&home, id)["run_dir"].as_str().unwrap().to_string();
    let (own_dir, shared_dir) = (folder(&own[0]), folder(&shared));

    // Declined: nothing moves.
    let mut child = oodlab(&home).args(["rm", "a"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let asked = text(&out.stderr);
    assert!(asked.contains("experiment `a`: 1 run(s)") && asked.contains("1 run(s) shared with other experiments stay"), "{asked}");
    assert!(asked.contains("nothing removed"), "{asked}");
    assert_eq!(experiments(&home), ["a", "b"]);

    // A wrong name: what the store holds.
    let out = oodlab(&home).args(["rm", "c", "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no experiment `c`") && text(&out.stderr).contains("it holds: a, b"), "{}", text(&out.stderr));

    // While a scheduler holds the home: refused, nothing removed. (`flock -o` holds the lock in
    // flock itself, not in its `sleep`, so killing flock releases it.)
    let mut holder = std::process::Command::new("flock").arg("-o").arg(home.join("scheduler.lock")).args(["sleep", "30"]).spawn().unwrap();
    let lock = home.join("scheduler.lock");
    wait_for("flock to hold the home's lock", || {
        !std::process::Command::new("flock").arg("-n").arg(&lock).arg("true").status().unwrap().success()
    });
    let out = oodlab(&home).args(["rm", "a", "--yes"]).output().unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(experiments(&home), ["a", "b"]);

    let out = run_ok(oodlab(&home).args(["rm", "a", "--yes"]));
    assert!(text(&out.stdout).contains("removed experiment `a`"), "{}", text(&out.stdout));
    assert_eq!(experiments(&home), ["b"]);
    assert!(!std::path::Path::new(&own_dir).exists(), "{own_dir} is still there");
    assert!(std::path::Path::new(&shared_dir).join("checkpoint.safetensors").exists(), "the shared run's folder went");
    assert!(run_detail(&home, &shared)["status"] == "done");
    let results = run_ok(oodlab(&home).args(["results", "b", "--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&results.stdout).unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["run_id"] == shared.as_str()));
    // The removed run's rows are gone too.
    let out = oodlab(&home).args(["status", "--run", &own[0]]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn gc_deletes_only_run_folders_no_run_in_the_store_owns() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(dir.path(), &spec_text("kept", "  baseline: {method: ce}", "  seeds: [0]", ""));
    run_ok(oodlab(&home).arg("run").arg(&spec));
    let run = statuses(&home, "kept")[0]["run_id"].as_str().unwrap().to_string();
    let run_dir = std::path::PathBuf::from(run_detail(&home, &run)["run_dir"].as_str().unwrap());
    // Left by an earlier store: a run folder of an experiment the store never heard of, one
    // beside a live run; and a folder that is not a run's, which gc must not touch.
    let orphan = home.join("runs/gone/0123456789ab");
    let beside = home.join("runs/kept/abcdef012345");
    let notes = home.join("runs/kept/notes");
    for d in [&orphan, &beside, &notes] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("checkpoint.safetensors"), vec![0u8; 2 << 20]).unwrap();
    }
    // And a mid-run checkpoint the finished run no longer needs.
    std::fs::write(run_dir.join("resume.safetensors"), vec![0u8; 1 << 20]).unwrap();

    let out = text(&run_ok(oodlab(&home).args(["gc", "--dry-run"])).stdout);
    assert!(out.contains("would delete") && out.contains("0123456789ab") && out.contains("abcdef012345"), "{out}");
    assert!(out.contains("2 folder(s)") && out.contains("would free 4.0 MiB"), "{out}");
    assert!(out.contains("1 mid-run checkpoint(s) of finished runs; would free 1.0 MiB"), "{out}");
    assert!(orphan.exists() && beside.exists() && run_dir.join("resume.safetensors").exists(), "a dry run deleted something");

    let out = text(&run_ok(oodlab(&home).arg("gc")).stdout);
    assert!(out.contains("freed 4.0 MiB") && out.contains("freed 1.0 MiB"), "{out}");
    assert!(!orphan.exists() && !beside.exists() && !home.join("runs/gone").exists());
    assert!(!run_dir.join("resume.safetensors").exists());
    assert!(notes.exists(), "a folder not named like a run was deleted");
    assert!(run_dir.join("checkpoint.safetensors").exists(), "the live run's folder went");
    let out = text(&run_ok(oodlab(&home).arg("gc")).stdout);
    assert!(out.contains("nothing to delete"), "{out}");
    // Its results are still there.
    let results = run_ok(oodlab(&home).args(["results", "kept", "--format", "json"]));
    assert!(!serde_json::from_slice::<Vec<serde_json::Value>>(&results.stdout).unwrap().is_empty());
}
