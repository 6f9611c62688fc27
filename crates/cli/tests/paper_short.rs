//! The paper's comparison and MixOE's protocol end to end, shortened to fit CI: the committed
//! specs pointed at the committed sample (300 training images, 1 epoch, seed 0), trained through
//! the real binary, then compared and reported. Every entry must train and be evaluated.

mod common;

use std::collections::BTreeSet;

use common::*;

/// `--set` arguments that shorten a committed spec: the sample data, 300 images, one seed, and
/// one epoch for every entry (the fine-tunes set their own epochs).
fn shortened(entries: &[String]) -> Vec<String> {
    let mut sets = sample_overrides();
    // 300 validation OOD images rather than 2,000: the detectors' searches (ODIN's above all)
    // stay quick.
    sets.extend(["data.train_limit=300".to_string(), "train.epochs=1".into(), "grid.seeds=[0]".into(), "eval.val_ood_size=300".into()]);
    sets.extend(entries.iter().filter(|e| *e != "baseline").map(|e| format!("methods.{e}.train.epochs=1")));
    sets
}

fn entries_of(home: &std::path::Path, spec: &std::path::Path) -> Vec<String> {
    let mut cmd = oodlab(home);
    cmd.arg("plan").arg(spec).args(["--format", "json"]);
    for s in sample_overrides() {
        cmd.arg("--set").arg(s);
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&run_ok(&mut cmd).stdout).unwrap();
    let set: BTreeSet<String> = rows.iter().map(|r| r["entry"].as_str().unwrap().to_string()).collect();
    set.into_iter().collect()
}

#[test]
fn the_paper_grid_shortened_trains_every_entry_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = experiments().join("paper-fmnist.yaml");
    let entries = entries_of(&home, &spec);
    assert_eq!(entries.len(), 28, "{entries:?}");
    let sets = shortened(&entries);
    let mut run = oodlab(&home);
    run.arg("run").arg(&spec).args(["--jobs", "2"]);
    for s in &sets {
        run.arg("--set").arg(s);
    }
    let out = run_ok(&mut run);
    let summary = text(&out.stdout);
    for e in &entries {
        assert!(summary.lines().any(|l| l.starts_with(&format!("{e} "))), "no row {e} in\n{summary}");
    }

    // 3 splits × 16 entries + lmoe-joint (seed 0 only, which is every seed here), and the 11
    // entries of "where to mix" on split 0 only: all done.
    let rows = statuses(&home, "paper-fmnist");
    assert_eq!(rows.len(), 3 * 17 + 11);
    assert!(rows.iter().all(|r| r["status"] == "done"), "{rows:?}");
    // Each run's results: 3 scores and the spec's 8 post-hoc detectors × (held-out classes,
    // MNIST), and MixOE's TNR@95 with them.
    let out = run_ok(oodlab(&home).args(["results", "paper-fmnist", "--format", "json"]));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), (3 * 17 + 11) * 11 * 2);
    assert!(results.iter().all(|r| r["tnr95"].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v))));

    let report = dir.path().join("report");
    let mut cmd = oodlab(&home);
    cmd.arg("report").arg(&spec).arg("--out").arg(&report);
    for s in &sets {
        cmd.arg("--set").arg(s);
    }
    run_ok(&mut cmd);
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    for e in &entries {
        assert!(md.contains(&format!("| {e} |")), "report.md has no row {e}");
    }
    assert!(report.join("report.html").is_file() && report.join("figures/roc-heldout.svg").is_file());
    // "Where to mix": the six stages of the CNN, with and without noise (at the logits with
    // noise, `lmoe-authors-code`), over the one cell they share.
    let wtm = std::fs::read_to_string(report.join("where-to-mix.md")).unwrap();
    let stages = ["input", "block1", "block2", "block3", "features", "logits"];
    let rows: Vec<&str> = wtm.lines().filter(|l| stages.iter().any(|s| l.starts_with(&format!("| {s} |")))).collect();
    assert_eq!(rows.len(), 12, "{wtm}");
    assert!(rows.iter().any(|r| r.starts_with("| logits |") && r.contains("| lmoe-authors-code |")), "{wtm}");
    assert!(wtm.contains("Over the (seed, split) cells that every one of them has, 1 in all: (0, 0)."), "{wtm}");
}

#[test]
fn mixoe_protocol_shortened_starts_every_fine_tune_from_the_seed_0_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = experiments().join("mixoe-protocol.yaml");
    let entries = entries_of(&home, &spec);
    let mut sets = shortened(&entries);
    // Both seeds of the fine-tunes: the baseline runs for seed 0 only.
    sets.retain(|s| s != "grid.seeds=[0]");
    let mut run = oodlab(&home);
    run.arg("run").arg(&spec).args(["--jobs", "2"]);
    for s in &sets {
        run.arg("--set").arg(s);
    }
    run_ok(&mut run);
    let rows = statuses(&home, "mixoe-protocol");
    let baseline: Vec<_> = rows.iter().filter(|r| r["entry"] == "baseline").collect();
    assert_eq!(baseline.len(), 1);
    assert_eq!(rows.len(), 1 + 6 * 2);
    for r in rows.iter().filter(|r| r["entry"] != "baseline") {
        assert_eq!(r["parent_id"], baseline[0]["run_id"], "{r}");
        assert_eq!(r["status"], "done", "{r}");
    }
    let out = run_ok(oodlab(&home).args(["results", "mixoe-protocol", "--format", "json"]));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), 13 * 11 * 2);
}
