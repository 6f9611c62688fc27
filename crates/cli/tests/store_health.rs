//! `oodlab store check` and `oodlab store backup` (issue #38): a sound store says so; a missing
//! folder, a cut scores file and a folder no run owns are each named; a store with a page of
//! garbage or cut short makes every command say so in one sentence that names `store check`;
//! a backup taken while a grid runs opens and holds every run finished before it started, and
//! never overwrites a file.

mod common;

use std::path::Path;

use common::*;

fn done_ids(home: &Path, experiment: &str) -> Vec<String> {
    let mut ids: Vec<String> = try_statuses(home, experiment)
        .iter()
        .filter(|r| r["status"] == "done")
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn check_names_each_problem_and_a_damaged_store_is_one_sentence_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(dir.path(), &spec_text("h", "  baseline: {method: ce}", "  seeds: [0, 1, 2]", ""));
    run_ok(oodlab(&home).arg("run").arg(&spec));

    let out = oodlab(&home).args(["store", "check"]).output().unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("integrity: ok") && said.contains("foreign keys: ok") && said.contains("runs: 3 (3 done)"), "{said}");
    assert!(said.trim_end().ends_with("the store is sound"), "{said}");

    // Three faults, one of each kind.
    let ids = done_ids(&home, "h");
    let folder = |id: &str| std::path::PathBuf::from(run_detail(&home, id)["run_dir"].as_str().unwrap());
    let (gone, cut) = (folder(&ids[0]), folder(&ids[1]));
    std::fs::remove_dir_all(&gone).unwrap();
    let scores = cut.join("scores.safetensors");
    let bytes = std::fs::read(&scores).unwrap();
    std::fs::write(&scores, &bytes[..bytes.len() / 2]).unwrap();
    let stray = gone.parent().unwrap().join("0123456789ab");
    std::fs::create_dir_all(&stray).unwrap();
    let out = oodlab(&home).args(["store", "check"]).output().unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("finished runs without their folder: 1") && said.contains(&ids[0]), "{said}");
    assert!(said.contains("scores file is missing or unreadable: 1") && said.contains(&scores.display().to_string()), "{said}");
    assert!(said.contains("no run in the store owns") && said.contains(&stray.display().to_string()), "{said}");
    assert!(said.trim_end().ends_with("3 problem(s)"), "{said}");

    // The store damaged three ways, each on the same clean copy: a page of garbage in the
    // middle (`store check` finds it, whatever page it is), the first page's schema overwritten
    // after the file header, and the file cut in half (every command stops, in one sentence).
    let db = home.join("oodlab.db");
    run_ok(oodlab(&home).args(["store", "backup"]).arg(dir.path().join("clean.db")));
    let clean = std::fs::read(dir.path().join("clean.db")).unwrap();
    let page = 4096;
    assert!(clean.len() >= 8 * page, "a store of {} bytes is too small to damage in its middle", clean.len());
    let garbage = |from: usize, to: usize| {
        let mut d = clean.clone();
        for (i, b) in d[from..to].iter_mut().enumerate() {
            *b = (i * 7 + 13) as u8;
        }
        d
    };
    let middle = (clean.len() / page / 2) * page;
    let put = |bytes: &[u8]| {
        for f in ["oodlab.db-wal", "oodlab.db-shm"] {
            let _ = std::fs::remove_file(home.join(f));
        }
        std::fs::write(&db, bytes).unwrap();
    };
    put(&garbage(middle, middle + page));
    let out = oodlab(&home).args(["store", "check"]).output().unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "a page of garbage: {said}");
    assert!(said.contains("integrity: ") && !said.contains("integrity: ok") || said.contains("the file is damaged"), "{said}");
    for (what, damaged) in [("the schema overwritten", garbage(100, page)), ("cut in half", clean[..clean.len() / 2].to_vec())] {
        put(&damaged);
        for args in [vec!["status"], vec!["results", "h"], vec!["store", "check"]] {
            let out = oodlab(&home).args(&args).output().unwrap();
            assert_eq!(out.status.code(), Some(3), "{what}: {args:?}");
            if args[0] == "store" {
                let said = text(&out.stdout);
                assert!(said.contains("the file is damaged") || !said.contains("integrity: ok"), "{what}: {said}");
            } else {
                let err = text(&out.stderr);
                assert_eq!(err.lines().count(), 1, "{what}: {args:?}: one sentence, not SQLite's message through every layer: {err}");
                assert!(err.contains("the store file is damaged") && err.contains("`oodlab store check`"), "{what}: {err}");
            }
        }
    }
}

#[test]
fn a_backup_during_a_grid_holds_every_run_finished_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(dir.path(), &sized(spec_text("g", "  baseline: {method: ce}", "  seeds: [0, 1, 2, 3, 4, 5, 6, 7]", ""), 1200, 3));
    let mut grid = oodlab(&home)
        .arg("run")
        .arg(&spec)
        .arg("--jobs")
        .arg("1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("two runs of the grid to finish", || done_ids(&home, "g").len() >= 2);
    let before = done_ids(&home, "g");
    let copy = dir.path().join("copy").join("oodlab.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let out = run_ok(oodlab(&home).args(["store", "backup"]).arg(&copy));
    assert!(text(&out.stdout).contains("passes SQLite's integrity check"), "{}", text(&out.stdout));
    assert!(grid.try_wait().unwrap().is_none(), "the grid ended before the backup: nothing ran beside it");
    // The copy is a home's store: it opens, and every run done before the backup is done in it.
    let in_copy = done_ids(copy.parent().unwrap(), "g");
    assert!(before.iter().all(|id| in_copy.contains(id)), "before: {before:?}, in the copy: {in_copy:?}");
    assert!(in_copy.len() < 8, "the copy holds runs that had not finished: {in_copy:?}");
    // A second backup to the same file is refused; the first stays as it was.
    let first = std::fs::read(&copy).unwrap();
    let out = oodlab(&home).args(["store", "backup"]).arg(&copy).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("never overwrites"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&copy).unwrap(), first);
    assert!(grid.wait().unwrap().success());
    assert_eq!(done_ids(&home, "g").len(), 8);
}
