//! A spec to a results table through the real binary, and a rerun that starts nothing.

mod common;

use common::*;

#[test]
fn spec_to_results_then_rerun_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(dir.path(), &spec_text("e2e", "  baseline: {method: ce}", "  seeds: [0, 1]", ""));

    let plan = run_ok(oodlab(&home).args(["plan"]).arg(&spec).args(["--format", "json"]));
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan.len(), 2);
    assert!(plan.iter().all(|r| r["status"] == "new"));
    assert!(!home.join("oodlab.db").exists(), "plan never creates the store");

    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "2"]));

    let out = run_ok(oodlab(&home).arg("results").arg(&spec).args(["--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    // 2 runs × 3 scores × 2 OOD sets (held-out classes and MNIST).
    assert_eq!(rows.len(), 12);
    for key in ["run_id", "method", "seed", "split", "score", "ood_set", "id_acc", "auroc", "fpr95", "aupr_in", "aupr_out"] {
        assert!(rows.iter().all(|r| r.get(key).is_some()), "results JSON lacks `{key}`");
    }
    for r in &rows {
        for m in ["auroc", "fpr95", "aupr_in", "aupr_out", "id_acc"] {
            let v = r[m].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{m} = {v}");
        }
    }
    let sets: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["ood_set"].as_str().unwrap()).collect();
    assert_eq!(sets.into_iter().collect::<Vec<_>>(), ["heldout", "mnist"]);
    // The held-out set is the test images of classes 2, 4, 6, 7: 100 each in the sample.
    assert!(rows.iter().filter(|r| r["ood_set"] == "heldout").all(|r| r["n_ood"] == 400 && r["n_id"] == 600));

    // Artifacts are safetensors in the run folder.
    let id = rows[0]["run_id"].as_str().unwrap();
    let run_dir = home.join("runs/e2e").join(id);
    for f in ["checkpoint.safetensors", "scores.safetensors", "run.json", "events.jsonl"] {
        assert!(run_dir.join(f).is_file(), "{f} missing in {}", run_dir.display());
    }

    let before: Vec<_> = statuses(&home, "e2e").into_iter().map(|r| (r["run_id"].clone(), r["ended_at"].clone())).collect();
    let again = run_ok(oodlab(&home).arg("run").arg(&spec));
    assert!(text(&again.stderr).contains("already done; nothing to run"), "{}", text(&again.stderr));
    assert!(!text(&again.stderr).contains("start "), "a finished run was started again");
    let after: Vec<_> = statuses(&home, "e2e").into_iter().map(|r| (r["run_id"].clone(), r["ended_at"].clone())).collect();
    assert_eq!(before, after);
    for r in statuses(&home, "e2e") {
        assert_eq!((r["status"].as_str(), r["attempts"].as_i64()), (Some("done"), Some(1)));
    }
    let plan = run_ok(oodlab(&home).args(["plan"]).arg(&spec).args(["--format", "json"]));
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&plan.stdout).unwrap();
    assert!(plan.iter().all(|r| r["status"] == "done"));

    for (format, needle) in [("csv", "run_id,entry,method"), ("markdown", "| run_id | entry |"), ("table", "run_id")] {
        let out = run_ok(oodlab(&home).args(["results", "e2e", "--format", format]));
        assert!(text(&out.stdout).starts_with(needle), "{format}: {}", text(&out.stdout));
    }
}

#[test]
fn same_config_and_seed_give_identical_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &spec_text("det", "  baseline: {method: ce}", "  seeds: [3]", ""));
    let mut results = Vec::new();
    for home in ["a", "b"] {
        let home = dir.path().join(home);
        run_ok(oodlab(&home).arg("run").arg(&spec));
        let out = run_ok(oodlab(&home).args(["results", "det", "--format", "json"]));
        results.push(text(&out.stdout));
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn invalid_spec_is_rejected_before_the_store_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(dir.path(), &spec_text("bad", "  baseline: {method: ce}", "  seeds: [0]", "").replace("epochs: 1", "epochs: -1"));
    let out = oodlab(&home).arg("run").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    // `train: {epochs: -1, ...}` is line 19 of the generated spec; the value starts at column 17.
    assert!(err.contains(&format!("{}:19:17: field `train.epochs`", spec.display())), "{err}");
    assert!(!home.exists(), "the home folder was created for an invalid spec");
}

#[test]
fn metrics_command_matches_the_sklearn_reference() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("../../metrics/tests/fixtures/sklearn_reference.json")).unwrap();
    let case = &fixture["cases"][1];
    let dir = tempfile::tempdir().unwrap();
    let lines = |k: &str| case[k].as_array().unwrap().iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
    std::fs::write(dir.path().join("id.txt"), lines("id")).unwrap();
    std::fs::write(dir.path().join("ood.txt"), lines("ood")).unwrap();
    let out =
        run_ok(oodlab(dir.path()).current_dir(dir.path()).args(["metrics", "--id", "id.txt", "--ood", "ood.txt", "--format", "json"]));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["auroc", "fpr95", "aupr_in", "aupr_out"] {
        assert!((got[k].as_f64().unwrap() - case[k].as_f64().unwrap()).abs() < 1e-9, "{k}");
    }
    std::fs::write(dir.path().join("bad.txt"), "0.5\nnot-a-number\n").unwrap();
    let out = oodlab(dir.path()).current_dir(dir.path()).args(["metrics", "--id", "bad.txt", "--ood", "ood.txt"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad.txt:2: `not-a-number` is not a number"), "{}", text(&out.stderr));
}
