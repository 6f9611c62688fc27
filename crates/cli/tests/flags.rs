//! Collapse is never silent: a fine-tune that wrecks its parent's ID accuracy (here by a learning
//! rate of 3) finishes, and is flagged on its run's status line, in `oodlab status`, and in
//! `oodlab compare`'s cells.

mod common;

use common::*;

#[test]
fn a_collapsed_fine_tune_finishes_and_is_flagged_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let methods = "  baseline: {method: ce}\n  wild: {method: ce, init_from: baseline, train: {optimizer: {lr: 3.0}}}";
    // The baseline learns (1,200 images, 3 epochs); the fine-tune at lr 3 falls towards chance.
    let spec = write_spec(dir.path(), &sized(spec_text("flags", methods, "  seeds: [0]", ""), 1200, 3));
    let ran = run_ok(oodlab(&home).arg("run").arg(&spec));
    let log = text(&ran.stderr);
    let rows = statuses(&home, "flags");
    assert!(rows.iter().all(|r| r["status"] == "done"), "a flag never fails a run: {rows:?}");
    let wild = rows.iter().find(|r| r["entry"] == "wild").unwrap();
    let id = wild["run_id"].as_str().unwrap();
    // The finished run's line says why it is flagged.
    let line = log.lines().skip_while(|l| !l.starts_with(&format!("done   {id}"))).nth(1).unwrap_or_else(|| panic!("{log}"));
    assert!(line.trim_start().starts_with("FLAGGED acc-drop: ID accuracy"), "{line}");

    // Its accuracy by hand against its parent's, from `oodlab results`.
    let out = run_ok(oodlab(&home).args(["results", "flags", "--format", "json"]));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let acc = |entry: &str| results.iter().find(|r| r["entry"] == entry).unwrap()["id_acc"].as_f64().unwrap();
    assert!(acc("baseline") - acc("wild") > 0.05, "baseline {} vs wild {}", acc("baseline"), acc("wild"));
    let detail = format!(
        "ID accuracy {:.1}% is {:.1} points below its parent's {:.1}% (eval.max_acc_drop 5)",
        100.0 * acc("wild"),
        100.0 * (acc("baseline") - acc("wild")),
        100.0 * acc("baseline")
    );
    assert!(line.contains(&detail), "{line} / {detail}");
    assert_eq!(wild["flags"][0]["flag"], "acc-drop");
    assert!(rows.iter().find(|r| r["entry"] == "baseline").unwrap()["flags"].as_array().unwrap().is_empty());

    let table = text(&run_ok(oodlab(&home).args(["status", "flags"])).stdout);
    assert!(table.contains(&format!("{id} acc-drop: {detail}")), "{table}");
    let overview = text(&run_ok(oodlab(&home).args(["status"])).stdout);
    let flags_line = overview.lines().find(|l| l.starts_with("flags ")).unwrap();
    assert!(overview.lines().next().unwrap().ends_with("flagged") && flags_line.trim_end().ends_with(" 1"), "{overview}");
    let one = text(&run_ok(oodlab(&home).args(["status", "--run", id])).stdout);
    assert!(one.contains(&format!("FLAGGED          acc-drop: {detail}")), "{one}");

    // Compare marks the flagged run's cells, and says what the mark means.
    let compare = text(&run_ok(oodlab(&home).args(["compare", "flags", "--metric", "auroc", "--format", "markdown"])).stdout);
    let wild_row = compare.lines().find(|l| l.starts_with("| wild |")).unwrap();
    let base_row = compare.lines().find(|l| l.starts_with("| baseline |")).unwrap();
    assert_eq!(wild_row.matches('‡').count(), 4, "{wild_row}");
    assert_eq!(base_row.matches('‡').count(), 0, "{base_row}");
    assert!(compare.contains("‡ = includes runs flagged as collapsed or unstable"), "{compare}");
}
