//! `oodlab store rebuild` (issue #38): a finished home whose store is deleted, cut in half, or has
//! a page of garbage is made again from its run folders alone, and `oodlab results` and `oodlab
//! compare` print byte for byte what they printed before the loss; the damaged file is kept
//! aside, never overwritten; `gc` refuses without a store and names the rebuild.

mod common;

use std::path::Path;

use common::*;

const ANIMAL: &str = "  animal:
    format: idx
    classes: 10
    train: {images: @/animal-mnist/train-images-idx3-ubyte.gz, labels: @/animal-mnist/train-labels-idx1-ubyte.gz}";

/// What the results and comparisons of experiment `t` print (with a paired test, and ID
/// accuracy, which reads the run metrics).
fn outputs(home: &Path) -> Vec<Vec<u8>> {
    let runs: [&[&str]; 3] = [
        &["results", "t", "--format", "json"],
        &["compare", "t", "--baseline", "baseline", "--pair", "oe:baseline"],
        &["compare", "t", "--metric", "id_acc", "--format", "json"],
    ];
    runs.iter().map(|args| run_ok(oodlab(home).args(*args)).stdout).collect()
}

fn kept_aside(home: &Path) -> usize {
    // The main files only (a WAL kept beside one ends in -wal).
    let names: Vec<String> = std::fs::read_dir(home).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.iter().filter(|n| n.starts_with("oodlab.db.damaged-") && n.ends_with('Z')).count()
}

fn rebuild(home: &Path) -> String {
    // The file kept aside is named by the second: two rebuilds in one second would collide.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = run_ok(oodlab(home).args(["store", "rebuild"]));
    text(&out.stdout)
}

#[test]
fn a_lost_or_damaged_store_is_rebuilt_from_the_run_folders_to_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let extra = ANIMAL.replace('@', sample().to_str().unwrap());
    let methods = "  baseline: {method: ce}\n  oe: {method: {kind: oe, weight: 0.5}, init_from: baseline}";
    let spec = write_spec(dir.path(), &spec_text("t", methods, "  seeds: [0, 1]", &extra));
    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--set", "data.outliers=animal"]));
    let before = outputs(&home);
    assert!(text(&before[0]).contains("\"entry\": \"oe\""), "{}", text(&before[0]));
    let db = home.join("oodlab.db");

    // Deleted (with its WAL): gc refuses and names the rebuild.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let out = oodlab(&home).arg("gc").output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("oodlab store rebuild"), "{}", text(&out.stderr));
    let said = rebuild(&home);
    assert!(said.contains("1 experiment(s) (t); runs: 4 done, 0 failed, 0 interrupted, 0 pending"), "{said}");
    assert_eq!(outputs(&home), before, "deleted, then rebuilt: the same results and comparisons");
    assert_eq!(kept_aside(&home), 0, "nothing to keep aside");

    // Cut in half.
    run_ok(oodlab(&home).args(["store", "check"]));
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    let out = oodlab(&home).args(["results", "t"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("`oodlab store rebuild`"), "{}", text(&out.stderr));
    rebuild(&home);
    assert_eq!(outputs(&home), before, "cut, then rebuilt");
    assert_eq!(kept_aside(&home), 1, "the cut file is kept aside");

    // A page of garbage in the middle.
    let mut bytes = std::fs::read(&db).unwrap();
    // (Its middle page: how many pages the main file has depends on when SQLite last moved the
    // WAL into it.)
    assert!(bytes.len() >= 2 * 4096, "the store has at least 2 pages");
    let page = bytes.len() / 4096 / 2 * 4096;
    bytes[page..page + 4096].fill(0xAB);
    std::fs::write(&db, &bytes).unwrap();
    rebuild(&home);
    assert_eq!(outputs(&home), before, "garbage, then rebuilt");
    assert_eq!(kept_aside(&home), 2, "each damaged file is kept, none overwritten");
    let out = run_ok(oodlab(&home).args(["store", "check"]));
    assert!(text(&out.stdout).trim_end().ends_with("the store is sound"), "{}", text(&out.stdout));
}

#[test]
fn the_scheduler_backs_up_the_store_every_n_finished_runs_keeping_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // A bad setting first: refused with its place in the home's file, nothing run.
    std::fs::write(home.join("oodlab.yaml"), "store:\n  backup_every: 0\n").unwrap();
    let spec = write_spec(dir.path(), &spec_text("b", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3, 4]", ""));
    let out = oodlab(&home).arg("run").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("oodlab.yaml:2:17: field `store.backup_every`: must be at least 1"), "{}", text(&out.stderr));
    assert!(!home.join("backups").exists());

    // Every 2 finished runs, the newest 2 kept: of 5 runs, backups after the 2nd and the 4th.
    std::fs::write(home.join("oodlab.yaml"), "store:\n  backup_every: 2\n  keep: 2\n").unwrap();
    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    let mut backups: Vec<_> = std::fs::read_dir(home.join("backups")).unwrap().map(|e| e.unwrap().path()).collect();
    backups.sort();
    assert_eq!(backups.len(), 2, "{backups:?}");
    // Each opens as a home's store and holds the runs finished when it was taken.
    let done_in = |backup: &Path| {
        let other = dir.path().join(format!("restored-{}", backup.file_name().unwrap().to_string_lossy()));
        std::fs::create_dir_all(&other).unwrap();
        std::fs::copy(backup, other.join("oodlab.db")).unwrap();
        statuses(&other, "b").iter().filter(|r| r["status"] == "done").count()
    };
    assert_eq!((done_in(&backups[0]), done_in(&backups[1])), (2, 4));

    // Another 5 (new seeds): 2 more backups, the oldest gone.
    let more = write_spec(dir.path(), &spec_text("b", "  baseline: {method: ce}", "  seeds: [5, 6, 7, 8, 9]", ""));
    run_ok(oodlab(&home).arg("run").arg(&more).args(["--jobs", "1"]));
    let mut after: Vec<_> = std::fs::read_dir(home.join("backups")).unwrap().map(|e| e.unwrap().path()).collect();
    after.sort();
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&backups[0]) && !after.contains(&backups[1]), "{after:?} replaced {backups:?}");
}
