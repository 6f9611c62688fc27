//! The Slurm backend against a real single-node Slurm (scripts/slurm-local.sh, started by
//! .ci/run): a grid with dependencies through job arrays gives the local backend's results, with
//! one squeue call per poll; a failing worker is retried, then recorded failed with its reason;
//! `oodlab cancel` leaves no job of the home in squeue; a job warned of its time limit (SIGUSR1 to
//! its batch shell, as `--signal=B:USR1@N` sends it) is submitted again and resumes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Jobs of this home still pending or running in Slurm.
fn live_jobs(home: &Path) -> Vec<String> {
    let out = std::process::Command::new("squeue").args(["-h", "-r", "--states=PENDING,RUNNING", "-o", "%i %k"]).output().unwrap();
    let needle = format!("oodlab:{}", std::path::absolute(home).unwrap().display());
    text(&out.stdout).lines().filter(|l| l.contains(&needle)).map(String::from).collect()
}

fn slurm_args() -> [&'static str; 4] {
    ["--backend", "slurm", "--set", "resources.slurm.poll_seconds=0.5"]
}

/// (run, score, set, auroc, fpr95) of every result row, sorted.
fn results(home: &Path, name: &str) -> Vec<String> {
    let out = run_ok(oodlab(home).args(["results", name, "--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut v: Vec<String> =
        rows.iter().map(|r| format!("{} {} {} {} {}", r["run_id"], r["score"], r["ood_set"], r["auroc"], r["fpr95"])).collect();
    v.sort();
    v
}

#[test]
fn a_grid_through_job_arrays_equals_the_local_backend() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample().display().to_string();
    let animal = format!(
        "  animal:\n    format: idx\n    classes: 10\n    train: {{images: {s}/animal-mnist/train-images-idx3-ubyte.gz, labels: {s}/animal-mnist/train-labels-idx1-ubyte.gz}}"
    );
    let yaml = spec_text("arrays", "  baseline: {method: ce}\n  oe: {method: oe, init_from: baseline}", "  seeds: [0, 1, 2]", &animal)
        .replace("  ood: [mnist]\n", "  ood: [mnist]\n  outliers: animal\n")
        + "resources: {slurm: {time: \"00:30:00\"}}\n";
    let spec = write_spec(dir.path(), &yaml);
    let (slurm_home, local_home) = (dir.path().join("slurm"), dir.path().join("local"));
    let out = run_ok(oodlab(&slurm_home).arg("run").arg(&spec).args(slurm_args()).args(["--jobs", "3", "--threads", "1"]));
    run_ok(oodlab(&local_home).arg("run").arg(&spec).args(["--jobs", "2", "--threads", "1"]));
    let rows = statuses(&slurm_home, "arrays");
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter().all(|r| r["status"] == "done" && r["attempts"] == 1 && r["slot"].as_str().unwrap().starts_with("slurm:")),
        "{rows:?}"
    );
    assert_eq!(results(&slurm_home, "arrays"), results(&local_home, "arrays"), "Slurm and local runs of the same seeds agree");
    // The three baselines went out as one array of 3 tasks.
    let lists: Vec<usize> = std::fs::read_dir(slurm_home.join("slurm"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tasks"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .collect();
    assert!(lists.contains(&3), "task lists {lists:?}");
    // One squeue call per poll, whatever the number of runs followed.
    let err = text(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("slurm: ")).unwrap_or_else(|| panic!("{err}"));
    let nums: Vec<usize> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
    let (calls, polls, most) = (nums[0], nums[1], nums[2]);
    assert!(calls <= polls && calls > 0, "{line}");
    assert!(most >= 3, "a call followed several runs at once: {line}");
    assert!(live_jobs(&slurm_home).is_empty());
    // The spec's sbatch settings reached Slurm: every task has the 30-minute time limit.
    let needle = format!("oodlab:{}", slurm_home.display());
    let all = std::process::Command::new("squeue").args(["-h", "-r", "--states=all", "-o", "%l %k"]).output().unwrap();
    let limits: Vec<String> =
        text(&all.stdout).lines().filter(|l| l.contains(&needle)).map(|l| l.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(limits.len(), 6, "{}", text(&all.stdout));
    assert!(limits.iter().all(|l| l == "30:00"), "{limits:?}");

    // A rescore goes out to Slurm as worker jobs too (ODIN wants the node's GPU), with the local
    // backend's values; the runs stay done with their one attempt.
    let rescored = run_ok(oodlab(&slurm_home).arg("rescore").arg(&spec).args(slurm_args()).args(["--scores", "knn,odin"]));
    assert!(text(&rescored.stderr).contains("6 run(s) rescored"), "{}", text(&rescored.stderr));
    run_ok(oodlab(&local_home).arg("rescore").arg(&spec).args(["--scores", "knn,odin", "--jobs", "2", "--threads", "1"]));
    let rows = results(&slurm_home, "arrays");
    assert_eq!(rows.iter().filter(|r| r.contains("\"odin\"")).count(), 12, "{rows:?}");
    assert_eq!(rows, results(&local_home, "arrays"));
    let tasks: String = std::fs::read_dir(slurm_home.join("slurm"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tasks"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(tasks.lines().filter(|l| l.ends_with("rescore.json")).count(), 6, "{tasks}");
    assert!(statuses(&slurm_home, "arrays").iter().all(|r| r["status"] == "done" && r["attempts"] == 1));
}

#[test]
fn a_failing_worker_is_retried_then_recorded_failed_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A truncated labels file: the worker fails reading it.
    let extra = broken_dataset(dir.path());
    let methods = "  baseline: {method: ce}\n  bad: {method: ce, data: {ood: [broken]}}";
    let spec = write_spec(
        dir.path(),
        &spec_text("slurm-fail", methods, "  seeds: [0]", &extra).replace("grid:", "resources: {retries: 1, retry_delay: 0.5}\ngrid:"),
    );
    let out = oodlab(&home).arg("run").arg(&spec).args(slurm_args()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let rows = statuses(&home, "slurm-fail");
    let bad = rows.iter().find(|r| r["entry"] == "bad").unwrap();
    assert_eq!((bad["status"].as_str(), bad["attempts"].as_i64()), (Some("failed"), Some(2)), "{bad}");
    let reason = bad["failure"].as_str().unwrap();
    assert!(reason.contains("labels.idx") && reason.contains("need 1000 bytes"), "{reason}");
    assert!(rows.iter().any(|r| r["entry"] == "baseline" && r["status"] == "done"));
}

#[test]
fn cancel_leaves_no_job_in_squeue_and_marks_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let yaml = sized(spec_text("slurm-cancel", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3, 4, 5]", ""), 2000, 4);
    let spec = write_spec(dir.path(), &yaml);
    let mut child =
        oodlab(&home).arg("run").arg(&spec).args(slurm_args()).args(["--jobs", "2"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !try_statuses(&home, "slurm-cancel").iter().any(|r| r["status"] == "running") || live_jobs(&home).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the grid ended ({status}) before it was seen running: {:?}\n{err}", try_statuses(&home, "slurm-cancel"));
        }
        if Instant::now() > deadline {
            let all = std::process::Command::new("squeue").args(["-h", "-r", "--states=all", "-o", "%i %T %k"]).output().unwrap();
            panic!("nothing started: {:?}\nsqueue:\n{}", try_statuses(&home, "slurm-cancel"), text(&all.stdout));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run_ok(oodlab(&home).args(["cancel", "slurm-cancel"]));
    let status = child.wait().unwrap();
    assert!(!status.success() || status.code() == Some(1), "{status}");
    assert!(live_jobs(&home).is_empty(), "left in squeue: {:?}", live_jobs(&home));
    let rows = statuses(&home, "slurm-cancel");
    assert!(rows.iter().all(|r| r["status"] != "running"), "{rows:?}");
    assert!(rows.iter().any(|r| r["status"] == "interrupted" && r["failure"].as_str().unwrap_or("").contains("cancelled")), "{rows:?}");
}

#[test]
fn a_killed_submitter_run_again_re_attaches_and_every_run_is_done_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let yaml = sized(spec_text("slurm-attach", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3]", ""), 1500, 3);
    let spec = write_spec(dir.path(), &yaml);
    let mut first =
        oodlab(&home).arg("run").arg(&spec).args(slurm_args()).args(["--jobs", "4"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while live_jobs(&home).is_empty() {
        assert!(Instant::now() < deadline, "nothing submitted");
        assert!(first.try_wait().unwrap().is_none(), "the grid ended before it was seen in Slurm");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The submitting process dies; its jobs run on in Slurm.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    first.wait().unwrap();
    let again = run_ok(oodlab(&home).arg("run").arg(&spec).args(slurm_args()).args(["--jobs", "4"]));
    assert!(text(&again.stderr).contains("re-attached to Slurm job"), "{}", text(&again.stderr));
    let rows = statuses(&home, "slurm-attach");
    assert!(rows.iter().all(|r| r["status"] == "done" && r["attempts"] == 1), "every run done exactly once: {rows:?}");
    assert!(live_jobs(&home).is_empty());
    // Each run was submitted once: one task list, 4 lines.
    let lists: Vec<usize> = std::fs::read_dir(home.join("slurm"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tasks"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .collect();
    assert_eq!(lists, vec![4], "nothing was submitted twice");
}

#[test]
fn a_job_warned_of_its_time_limit_is_requeued_and_resumes_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = sized(spec_text("requeue", "  baseline: {method: ce}", "  seeds: [0]", ""), 3000, 4)
        .replace("model: {channels: [4, 8, 8]}", "model: {channels: [16, 32, 32]}")
        + "resources: {slurm: {time: \"00:30:00\", signal_seconds: 300}}\n";
    let spec = write_spec(dir.path(), &yaml);
    let (home, local) = (dir.path().join("slurm"), dir.path().join("local"));
    run_ok(oodlab(&local).arg("run").arg(&spec).args(["--threads", "1"]));
    let child = oodlab(&home)
        .arg("run")
        .arg(&spec)
        .args(slurm_args())
        .args(["--threads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the run to start under Slurm", || try_statuses(&home, "requeue").first().is_some_and(|r| r["status"] == "running"));
    let id = statuses(&home, "requeue")[0]["run_id"].as_str().unwrap().to_string();
    let folder = std::path::PathBuf::from(run_detail(&home, &id)["run_dir"].as_str().unwrap());
    wait_for("the first epoch's checkpoint", || folder.join("resume.safetensors").exists());
    // What Slurm does `signal_seconds` before the time limit.
    let job = live_jobs(&home)[0].split(' ').next().unwrap().to_string();
    let signalled = std::process::Command::new("scancel").args(["--batch", "--signal=USR1", &job]).output().unwrap();
    assert!(signalled.status.success(), "{}", text(&signalled.stderr));

    let out = child.wait_with_output().unwrap();
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!("requeue {id} baseline seed=0 split=0: SIGUSR1")) && said.contains("(submitted again; it resumes)"),
        "{said}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&run_ok(oodlab(&home).args(["status", "--run", &id, "--format", "json"])).stdout).unwrap();
    let attempts = v["attempt_history"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["status"], "interrupted");
    assert!(attempts[0]["failure"].as_str().unwrap().starts_with("requeued: SIGUSR1"), "{attempts:?}");
    assert_eq!(attempts[1]["status"], "done");
    assert!(attempts[1]["resumed_epoch"].as_i64().unwrap() >= 1, "{attempts:?}");
    assert_eq!(results(&home, "requeue"), results(&local, "requeue"), "resumed under Slurm = trained in one go locally");
    assert!(live_jobs(&home).is_empty());
}
