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

#[test]
fn paper_plan_shows_each_fine_tune_on_its_baseline_trained_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = oodlab(dir.path());
    cmd.arg("plan").arg(experiments().join("paper-fmnist.yaml")).args(["--format", "json"]);
    for s in sample_overrides() {
        cmd.arg("--set").arg(s);
    }
    let out = run_ok(&mut cmd);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let baselines: Vec<_> = rows.iter().filter(|r| r["entry"] == "baseline").collect();
    // 3 seeds × 3 splits, each once; 15 OE-family entries fine-tune from them, the one-pass
    // LMOE ablation on seed 0 of each split, and the 11 "where to mix" entries on split 0.
    assert_eq!(baselines.len(), 9);
    assert_eq!(rows.len(), 9 + 9 * 15 + 3 + 3 * 11);
    let methods: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods.into_iter().collect::<Vec<_>>(), ["ce", "energy-oe", "lmoe", "mixoe", "oe"]);
    for r in rows.iter().filter(|r| r["entry"] != "baseline") {
        let parent =
            baselines.iter().find(|b| b["run_id"] == r["depends_on"]).unwrap_or_else(|| panic!("{r} does not depend on a baseline"));
        assert_eq!((&parent["seed"], &parent["split"]), (&r["seed"], &r["split"]));
    }
    // Splits 1 and 2 are seeded draws of 6 classes, different from split 0.
    let classes = |split: i64| baselines.iter().find(|b| b["split"] == split).unwrap()["id_classes"].clone();
    assert_eq!(classes(0), serde_json::json!([0, 1, 3, 5, 8, 9]));
    assert_ne!(classes(1), classes(0));
    assert_eq!(classes(1).as_array().unwrap().len(), 6);
}

/// The quickstart's method entries, in the order its spec writes them.
const ENTRIES: [&str; 5] = ["baseline", "oe", "mixoe", "lmoe", "lmoe-authors-code"];

#[test]
fn quickstart_results_list_all_five_entries_with_every_score_and_ood_set() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // The committed quickstart, made smaller so that the test stays quick, with ODIN (which the
    // quickstart leaves to `oodlab rescore`) among its detectors.
    let spec = experiments().join("quickstart.yaml");
    let odin = "eval.scores=[msp, maxlogit, energy, gen, knn, react, ash, mahalanobis, rmds, vim, odin]";
    let small = ["--set", "data.train_limit=300", "--set", "train.epochs=1", "--set", odin];
    let ran = run_ok(oodlab(&home).arg("run").arg(&spec).args(small).args(["--jobs", "2"]));
    // `oodlab run` ends with the comparison: AUROC and FPR@95, methods × OOD sets, mean ± std
    // over the two seeds; not the 48 per-run rows.
    let summary = text(&ran.stdout);
    for metric in ["auroc of `msp`", "fpr95 of `msp`"] {
        let table = summary.split(metric).nth(1).unwrap_or_else(|| panic!("no {metric} table in\n{summary}"));
        let header = table.lines().nth(1).unwrap();
        assert!(header.starts_with("method") && header.contains("heldout") && header.contains("mnist"), "{header}");
        for method in ENTRIES {
            let line = table.lines().find(|l| l.starts_with(&format!("{method} "))).unwrap_or_else(|| panic!("no {method} in {table}"));
            assert_eq!(line.matches(" ± ").count(), 4, "{line}");
            assert_eq!(line.matches("(2)").count(), 4, "{line}");
        }
    }
    assert!(summary.lines().count() < 30, "{summary}");
    let out = run_ok(oodlab(&home).args(["results", "quickstart", "--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut cells = std::collections::BTreeSet::new();
    for r in &rows {
        cells.insert((
            r["method"].as_str().unwrap().to_string(),
            r["score"].as_str().unwrap().to_string(),
            r["ood_set"].as_str().unwrap().to_string(),
        ));
    }
    // The logit scores and every post-hoc detector the quickstart lists.
    let scores = ["msp", "maxlogit", "energy", "gen", "knn", "react", "ash", "mahalanobis", "rmds", "vim", "odin"];
    for method in ["ce", "oe", "mixoe", "lmoe"] {
        for score in scores {
            for set in ["heldout", "mnist"] {
                assert!(cells.contains(&(method.to_string(), score.to_string(), set.to_string())), "no {method}/{score}/{set} in {rows:?}");
            }
        }
    }
    // Two seeds of each of the five entries.
    assert_eq!(rows.len(), ENTRIES.len() * 2 * scores.len() * 2);
    // The detectors' settings were searched on the validation OOD set (a slice of the outlier
    // pool) and recorded with the run.
    let run_id = rows[0]["run_id"].as_str().unwrap();
    let detail: serde_json::Value =
        serde_json::from_slice(&run_ok(oodlab(&home).args(["status", "--run", run_id, "--format", "json"])).stdout).unwrap();
    let m = &detail["metrics"];
    assert_eq!(m["detector.knn.candidates"], 7.0, "{m}");
    assert_eq!(m["detector.gen.candidates"], 42.0, "{m}");
    assert_eq!(m["detector.gen.no_effect.m"], 1.0, "6 classes: every M takes all of them; {m}");
    assert!((0.0..=1.0).contains(&m["detector.vim.val_auroc"].as_f64().unwrap()), "{m}");
    // ODIN: 4 temperatures × 4 noise levels, on the network itself.
    assert_eq!(m["detector.odin.candidates"], 16.0, "{m}");
    assert!(m["detector.odin.temperature"].as_f64().unwrap() >= 1.0, "{m}");

    // The comparison table, as Markdown and LaTeX, with mean ± std (n) in every cell, and LMOE
    // against MixOE paired over the matched seeds.
    for (format, pm) in [("markdown", "±"), ("latex", "$\\pm$")] {
        let out = run_ok(oodlab(&home).args([
            "compare",
            "quickstart",
            "--metric",
            "fpr95",
            "--format",
            format,
            "--baseline",
            "baseline",
            "--pair",
            "lmoe:mixoe",
        ]));
        let text = text(&out.stdout);
        for method in ENTRIES {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("| {method} |")) || l.starts_with(&format!("{method} &")))
                .unwrap_or_else(|| panic!("no {method} row in\n{text}"));
            // heldout, mnist, near avg, far avg: every cell has mean ± std and n = 2.
            assert_eq!(line.matches(pm).count(), 4, "{line}");
            assert_eq!(line.matches("(2)").count(), 4, "{line}");
        }
        assert!(text.contains("lmoe vs mixoe") && text.contains("Wilcoxon"), "{text}");
        if format == "latex" {
            assert!(text.contains("\\textbf{") && text.contains("\\begin{tabular}"), "{text}");
        } else {
            assert!(text.contains("**"), "{text}");
        }
    }

    // Rows by any field: the method name, a training setting, an LMOE switch (`-` for the others).
    let rows_of = |by: &str| -> Vec<(String, u64)> {
        let out = run_ok(oodlab(&home).args(["compare", "quickstart", "--rows", by, "--format", "json"]));
        let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        t["rows"].as_array().unwrap().iter().map(|r| (r["name"].as_str().unwrap().to_string(), r["runs_done"].as_u64().unwrap())).collect()
    };
    // Rows in the order the spec writes its entries.
    assert_eq!(rows_of("method"), [("ce".to_string(), 2), ("oe".into(), 2), ("mixoe".into(), 2), ("lmoe".into(), 4)]);
    assert_eq!(rows_of("method.weight"), [("-".to_string(), 2), ("0.5".into(), 2), ("1.0".into(), 6)]);
    assert_eq!(rows_of("method.consistency.loss"), [("-".to_string(), 6), ("mse".into(), 2), ("none".into(), 2)]);
    assert_eq!(rows_of("method.pair"), [("-".to_string(), 8), ("joint".into(), 2)]);
    let bad = oodlab(&home).args(["compare", "quickstart", "--rows", "train.nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));

    // The compare cells are the numbers of the store's `method_stats` view, as sqlite3 reads them.
    let out = run_ok(oodlab(&home).args(["compare", "quickstart", "--metric", "auroc", "--score", "energy", "--format", "json"]));
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sql =
        "SELECT entry, ood_set, n, mean, std FROM method_stats WHERE experiment = 'quickstart' AND metric = 'auroc' AND score = 'energy'";
    let out = run_ok(std::process::Command::new("sqlite3").arg("-json").arg(home.join("oodlab.db")).arg(sql));
    let view: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view.len(), ENTRIES.len() * 2);
    let columns: Vec<String> = table["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    for v in &view {
        let row = table["rows"].as_array().unwrap().iter().find(|r| r["name"] == v["entry"]).unwrap();
        let c = columns.iter().position(|c| c == v["ood_set"].as_str().unwrap()).unwrap();
        let cell = &row["cells"][c]["summary"];
        assert_eq!(cell["n"], v["n"]);
        for k in ["mean", "std"] {
            assert!((cell[k].as_f64().unwrap() - v[k].as_f64().unwrap()).abs() < 1e-12, "{k}: {cell} vs {v}");
        }
    }

    // The report of the quickstart: every figure of every method (the quickstart measures the
    // interpolation paths), SVG and PNG.
    let report = dir.path().join("report");
    let out = run_ok(oodlab(&home).arg("report").arg(&spec).args(small).arg("--out").arg(&report));
    // (The 18th: the contact sheet of the data roles' shared images.)
    assert!(text(&out.stdout).contains("18 figures"), "{}", text(&out.stdout));
    let mut stems = vec!["roc-heldout".to_string(), "roc-mnist".to_string()];
    for entry in ENTRIES {
        stems.extend(["hist", "pca", "paths"].map(|k| format!("{k}-{entry}")));
    }
    for stem in stems {
        for ext in ["svg", "png"] {
            assert!(report.join(format!("figures/{stem}.{ext}")).is_file(), "{stem}.{ext}");
        }
    }
}
