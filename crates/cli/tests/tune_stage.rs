//! The tuning stage run by the scheduler (issue #33): trials are runs (their own ids, queued,
//! resumed), ASHA promotes trials from their checkpoints, the choice is made on the validation
//! OOD set only and recorded, the entry's runs are queued with it, a rerun reuses it, and a
//! scheduler killed with SIGKILL mid-search takes the search up where it stood. A poisoned test
//! set leaves the choice where it was; the same poison as the validation set moves it.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::Value;

const ANIMAL: &str = "  animal:
    format: idx
    classes: 10
    train: {images: @/animal-mnist/train-images-idx3-ubyte.gz, labels: @/animal-mnist/train-labels-idx1-ubyte.gz}";

/// OE searched over 4 weights on seed 0 (ASHA: rungs of 1, 2 and 3 epochs, 1 in 2 promoted),
/// then run on seeds 0 and 1. The guard is off: the sample's 20 validation images make ID
/// accuracy too coarse for it (the guard is tested on its own in tuning_stage.rs).
fn spec(dir: &Path) -> std::path::PathBuf {
    let methods = "  baseline: {method: ce}
  oe:
    method: {kind: oe, weight: 0.5}
    init_from: baseline
    tune:
      space: {method.weight: [0.1, 0.5, 1, 2]}
      sampler: grid
      schedule: {asha: {eta: 2, min_epochs: 1}}
      objective: {metric: auroc, score: msp, on: val_ood}";
    let extra = ANIMAL.replace('@', sample().to_str().unwrap());
    let text = sized(spec_text("t", methods, "  seeds: [0, 1]", &extra), 400, 3)
        .replace("  ood: [mnist]", "  ood: [mnist]\n  outliers: animal")
        .replace("methods:\n", "eval: {max_acc_drop: 100, scores: [msp, knn]}\nmethods:\n");
    write_spec(dir, &text)
}

/// Rows of `sql` on the home's store, as sqlite3 reads them.
fn query(home: &Path, sql: &str) -> Vec<Value> {
    let out = run_ok(std::process::Command::new("sqlite3").arg("-json").arg(home.join("oodlab.db")).arg(sql));
    rows(&out)
}

/// The rows of `sql` once the store exists with its tables, else none (a scheduler starting
/// creates the file first, then its tables).
fn try_query(home: &Path, sql: &str) -> Vec<Value> {
    match std::process::Command::new("sqlite3").arg("-json").arg(home.join("oodlab.db")).arg(sql).output() {
        Ok(out) if out.status.success() => rows(&out),
        _ => Vec::new(),
    }
}

fn rows(out: &std::process::Output) -> Vec<Value> {
    let text = text(&out.stdout);
    if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

const RECORD: &str = "SELECT trial, rung, epochs, field_values, run_id FROM tune_trials ORDER BY trial, rung";
const CHOICE: &str = "SELECT trial, field_values, objective, spent_epochs, budget_epochs FROM tune_choices";

#[test]
fn a_search_runs_its_trials_as_runs_chooses_on_validation_ood_and_queues_the_entry_with_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = spec(dir.path());
    let out = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    let said = text(&out.stderr);

    let record = query(&home, RECORD);
    // Every weight tried for 1 epoch; at least the better of the first two went on.
    let first: Vec<&Value> = record.iter().filter(|r| r["rung"] == 0).collect();
    assert_eq!(first.len(), 4, "{record:?}");
    assert!(first.iter().all(|r| r["epochs"] == 1), "{record:?}");
    assert!(record.iter().any(|r| r["rung"] == 1 && r["epochs"] == 2), "a promotion: {record:?}");
    // A promoted rung went on from its earlier rung's checkpoint, not from zero.
    for r in record.iter().filter(|r| r["rung"] != 0) {
        let events = std::fs::read_to_string(home.join("runs/t").join(r["run_id"].as_str().unwrap()).join("events.jsonl")).unwrap();
        // Rungs of 1, 2, 3 epochs: each goes on after its earlier rung's last epoch.
        let resumed_after = r["epochs"].as_i64().unwrap() - 1;
        assert!(events.contains(&format!("{{\"event\":\"resumed\",\"epoch\":{resumed_after}}}")), "{events}");
        assert!(said.contains(&format!("resume {}", r["run_id"].as_str().unwrap())), "{said}");
    }

    // The budget: each trial's highest rung's epochs (one seed, one split), within 4 trials × 3.
    let choice = query(&home, CHOICE);
    assert_eq!(choice.len(), 1);
    let choice = &choice[0];
    let mut spent = 0;
    for t in 0..4 {
        spent += record.iter().filter(|r| r["trial"] == t).map(|r| r["epochs"].as_i64().unwrap()).max().unwrap();
    }
    assert_eq!(choice["spent_epochs"], spent);
    assert_eq!(choice["budget_epochs"], 12);

    // Never a test set: a trial run has the validation OOD set's metrics and no other.
    let test_metrics = query(
        &home,
        "SELECT o.run_id, o.ood_set FROM ood_metrics o JOIN tune_trials t ON t.run_id = o.run_id WHERE o.ood_set <> 'val_ood'",
    );
    assert!(test_metrics.is_empty(), "{test_metrics:?}");
    // The choice, worked out from the store: the best MSP AUROC on the validation OOD set among
    // the trials at the highest rung any trial finished.
    let objectives = query(
        &home,
        "SELECT t.trial, t.rung, o.auroc FROM tune_trials t JOIN ood_metrics o ON o.run_id = t.run_id
         WHERE o.ood_set = 'val_ood' AND o.score = 'msp' ORDER BY t.rung DESC, o.auroc DESC, t.trial",
    );
    assert_eq!(objectives.len(), record.len(), "each trial run has its objective");
    assert_eq!(choice["trial"], objectives[0]["trial"], "{objectives:?}");
    assert_eq!(choice["objective"], objectives[0]["auroc"]);
    let chosen: Vec<(String, Value)> = serde_json::from_str(choice["field_values"].as_str().unwrap()).unwrap();
    let weight = chosen[0].1.as_f64().unwrap();
    let trial = choice["trial"].as_i64().unwrap();
    assert_eq!(
        chosen,
        serde_json::from_str::<Vec<(String, Value)>>(
            record.iter().find(|r| r["trial"] == trial).unwrap()["field_values"].as_str().unwrap()
        )
        .unwrap()
    );

    // The experiment's runs: its baselines and OE's runs with the chosen weight — no trial.
    let runs = query(
        &home,
        "SELECT er.entry, r.id, r.config, r.status FROM experiment_runs er JOIN runs r ON r.id = er.run_id WHERE er.experiment = 't'",
    );
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "done"));
    for r in runs.iter().filter(|r| r["entry"] == "oe") {
        let config: Value = serde_json::from_str(r["config"].as_str().unwrap()).unwrap();
        assert_eq!(config["settings"]["method"]["weight"].as_f64(), Some(weight), "{config}");
        assert!(record.iter().all(|t| t["run_id"] != r["id"]));
    }
    let results = run_ok(oodlab(&home).args(["results", "t", "--format", "json"]));
    let rows: Vec<Value> = serde_json::from_slice(&results.stdout).unwrap();
    assert!(rows.iter().all(|row| record.iter().all(|t| t["run_id"] != row["run_id"])), "no trial in the results");

    // On record: `status --tune` shows every rung, the epochs spent (the last point of the
    // trajectory), and the choice.
    let out = run_ok(oodlab(&home).args(["status", "t", "--tune", "oe", "--format", "json"]));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["rungs"].as_array().unwrap().len(), record.len());
    assert_eq!(shown["spent_epochs"], spent);
    assert_eq!(shown["trajectory"].as_array().unwrap().last().unwrap()["epochs"], spent);
    assert_eq!(shown["choice"]["trial"], choice["trial"]);
    let out = run_ok(oodlab(&home).args(["status", "t", "--tune", "oe"]));
    assert!(text(&out.stdout).contains(&format!("chosen: trial {trial}, method.weight=")), "{}", text(&out.stdout));
    let out = oodlab(&home).args(["status", "t", "--tune", "baseline"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("entry `baseline` of `t` has no `tune:` block; searched entries: oe"), "{}", text(&out.stderr));

    // The comparison marks the rows not searched with the largest budget (here the baseline).
    let out = run_ok(oodlab(&home).args(["compare", "t"]));
    let said = text(&out.stdout);
    assert!(said.contains("baseline §") && !said.contains("oe §"), "{said}");
    assert!(said.contains("§ = tuned with a smaller budget than another row's 12 epochs of trials"), "{said}");

    // The report's "Tuning" section: the search's budget, its rungs and the choice.
    run_ok(oodlab(&home).arg("report").arg(&spec).arg("--out").arg(dir.path().join("report")));
    let report = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    let tuning = &report[report.find("## Tuning").expect("a Tuning section")..];
    assert!(tuning.contains(&format!("{spent} of 12 epochs spent, 4 trial(s), grid sampler")), "{tuning}");
    assert!(tuning.contains(&format!("Chosen: trial {trial}, method.weight=")), "{tuning}");
    assert_eq!(tuning.matches("| done | 1/1 |").count(), record.len(), "{tuning}");
    // A searched entry whose search has not run (added to the spec after the grid, as a grid
    // still training has them): the report still comes out, without tables for that entry.
    let more = std::fs::read_to_string(&spec).unwrap().replace(
        "grid:\n",
        "  oe2:\n    method: {kind: oe, weight: 1.0}\n    init_from: baseline\n    tune:\n      space: {method.weight: [0.5, 1]}\n      sampler: grid\n      objective: {metric: auroc, score: msp, on: val_ood}\ngrid:\n",
    );
    let spec2 = dir.path().join("t2.yaml");
    std::fs::write(&spec2, more).unwrap();
    run_ok(oodlab(&home).arg("report").arg(&spec2).arg("--out").arg(dir.path().join("report2")));
    let report2 = std::fs::read_to_string(dir.path().join("report2/report.md")).unwrap();
    assert!(
        report2.contains("## Scores and post-hoc detectors") && report2.contains("### oe\n") && !report2.contains("### oe2\n"),
        "{report2}"
    );

    // Queued again: the choice is reused, nothing trains.
    let out = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    assert!(text(&out.stderr).contains("all 4 runs of `t` are already done; nothing to run"), "{}", text(&out.stderr));
    assert_eq!(query(&home, RECORD), record);

    // The store lost: rebuilt from the run folders, the tuned entry's runs, the search's record
    // and its choice are there again — and a rerun still trains nothing.
    let choice = query(&home, CHOICE);
    let tune_status = run_ok(oodlab(&home).args(["status", "t", "--tune", "oe", "--format", "json"]));
    std::fs::remove_file(home.join("oodlab.db")).unwrap();
    run_ok(oodlab(&home).args(["store", "rebuild"]));
    let again = run_ok(oodlab(&home).args(["results", "t", "--format", "json"]));
    assert_eq!(text(&again.stdout), text(&results.stdout));
    assert_eq!(query(&home, RECORD), record);
    assert_eq!(query(&home, CHOICE), choice);
    let again = run_ok(oodlab(&home).args(["status", "t", "--tune", "oe", "--format", "json"]));
    // (Rebuilt attempts end when they are replayed: the times, and so the trajectory's order, are
    // the rebuild's, not the training's.)
    let untimed = |out: &std::process::Output| {
        let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_object_mut().unwrap().remove("trajectory");
        v["rungs"].as_array_mut().unwrap().iter_mut().for_each(|r| drop(r.as_object_mut().unwrap().remove("ended_at")));
        v
    };
    assert_eq!(untimed(&again), untimed(&tune_status));
    let out = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    assert!(text(&out.stderr).contains("all 4 runs of `t` are already done; nothing to run"), "{}", text(&out.stderr));

    // Killed with SIGKILL mid-search, then run again: the same record and choice as the search
    // that ran through (training is deterministic), no trial started twice.
    let other = dir.path().join("killed");
    let mut child = oodlab(&other).arg("run").arg(&spec).args(["--jobs", "1"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the search's third trial rung", || other.join("oodlab.db").exists() && try_query(&other, RECORD).len() >= 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let out = run_ok(oodlab(&other).arg("run").arg(&spec).args(["--jobs", "1"]));
    assert_eq!(query(&other, RECORD), record, "{}", text(&out.stderr));
    assert_eq!(query(&other, CHOICE), choice);
}

#[test]
fn the_choice_never_reads_a_test_set_and_follows_the_validation_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample().display().to_string();
    let clean = std::fs::read_to_string(spec(dir.path())).unwrap();
    let mnist = format!("test: {{images: {s}/mnist/t10k-images-idx3-ubyte.gz, labels: {s}/mnist/t10k-labels-idx1-ubyte.gz}}");
    // The poison: Fashion-MNIST's own test images (the ID classes among them) in place of MNIST.
    let poison =
        format!("test: {{images: {s}/fashion-mnist/t10k-images-idx3-ubyte.gz, labels: {s}/fashion-mnist/t10k-labels-idx1-ubyte.gz}}");
    assert!(clean.contains(&mnist));
    let poisoned = clean.replace(&mnist, &poison);
    // The poison as the validation OOD set instead (a dataset no run trains on, and no test set).
    let swapped = clean
        .replace("  animal:\n", &format!("  poison:\n    format: idx\n    classes: 10\n    {poison}\n  animal:\n"))
        .replace("eval: {max_acc_drop: 100, scores: [msp, knn]}", "eval: {max_acc_drop: 100, scores: [msp, knn], val_ood: poison}");
    let run = |name: &str, yaml: &str| {
        let home = dir.path().join(name);
        let folder = dir.path().join(format!("{name}-spec"));
        std::fs::create_dir_all(&folder).unwrap();
        let spec = write_spec(&folder, yaml);
        // One slot: with two, which trial ends first (and so what ASHA promotes) is up to timing.
        run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
        let results = run_ok(oodlab(&home).args(["results", "t", "--format", "json", "--ood-set", "mnist"]));
        (query(&home, RECORD), query(&home, CHOICE), text(&results.stdout))
    };
    let (record, choice, results) = run("clean", &clean);
    let (p_record, p_choice, p_results) = run("poisoned", &poisoned);
    assert_ne!(p_results, results, "the poison reached the test set");
    assert_eq!((p_record, p_choice), (record.clone(), choice.clone()), "the choice does not move with the test set");
    let (_, s_choice, _) = run("swapped", &swapped);
    assert_ne!(s_choice[0]["trial"], choice[0]["trial"], "the choice follows the validation set: {s_choice:?} against {choice:?}");
}

#[test]
fn a_search_comes_before_the_runs_of_a_grid_of_lower_priority() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = spec(dir.path());
    // Queued first, at a lower priority: a plain grid whose runs are always ready.
    let low_dir = dir.path().join("low");
    std::fs::create_dir_all(&low_dir).unwrap();
    let low = write_spec(&low_dir, &sized(spec_text("low", "  baseline: {method: ce}", "  seeds: [7, 8]", ""), 400, 3));
    run_ok(oodlab(&home).args(["queue", "add"]).arg(&low).arg("--priority=-1"));
    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    let started = |sql: &str| query(&home, sql).iter().map(|r| r["started_at"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let trials = started("SELECT r.started_at FROM tune_trials t JOIN runs r ON r.id = t.run_id");
    let tuned = started("SELECT r.started_at FROM experiment_runs e JOIN runs r ON r.id = e.run_id WHERE e.experiment = 't'");
    let lower = started("SELECT r.started_at FROM experiment_runs e JOIN runs r ON r.id = e.run_id WHERE e.experiment = 'low'");
    assert!(trials.len() >= 4 && tuned.len() == 4, "{trials:?} {tuned:?}");
    // The slot went to the search's trials, then to the chosen entry's runs, and only then to
    // the grid below: with the search asked only when no grid had a ready run, `low` took the
    // slot as soon as the baselines were done.
    let last_tuned = trials.iter().chain(&tuned).max().unwrap();
    assert!(lower.iter().all(|s| s > last_tuned), "low started {lower:?}, before the search's last run at {last_tuned}");
}

/// The shapes of the tensors in a safetensors file, read from its header.
fn shapes(path: &Path) -> serde_json::Map<String, Value> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header.as_object().unwrap().iter().filter(|(k, _)| *k != "__metadata__").map(|(k, v)| (k.clone(), v["shape"].clone())).collect()
}

#[test]
fn a_search_on_held_out_id_classes_trains_its_trials_and_their_parent_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let written = std::fs::read_to_string(spec(dir.path())).unwrap();
    let from = "objective: {metric: auroc, score: msp, on: val_ood}";
    assert!(written.contains(from));
    let spec = write_spec(dir.path(), &written.replace(from, "objective: {metric: auroc, score: msp, on: {classes: 1}}"));
    let out = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    let said = text(&out.stderr);

    // Every trial starts from one parent: the seed-0 baseline trained again without one class.
    let parents = query(&home, "SELECT DISTINCT r.parent_id FROM tune_trials t JOIN runs r ON r.id = t.run_id WHERE t.rung = 0");
    assert_eq!(parents.len(), 1, "{parents:?}");
    let parent = parents[0]["parent_id"].as_str().unwrap();
    let row = &query(&home, &format!("SELECT config, status FROM runs WHERE id = '{parent}'"))[0];
    assert_eq!(row["status"], "done", "{said}");
    let config: Value = serde_json::from_str(row["config"].as_str().unwrap()).unwrap();
    let baselines = query(
        &home,
        "SELECT r.id, r.config FROM experiment_runs er JOIN runs r ON r.id = er.run_id WHERE er.experiment = 't' AND er.entry = 'baseline' AND r.seed = 0",
    );
    let baseline: Value = serde_json::from_str(baselines[0]["config"].as_str().unwrap()).unwrap();
    assert_ne!(baselines[0]["id"], parent);
    let held = config["classes"]["val_classes"].as_array().unwrap().clone();
    assert_eq!(held.len(), 1);
    let id_classes = baseline["classes"]["id_classes"].as_array().unwrap();
    assert!(id_classes.contains(&held[0]) && !config["classes"]["id_classes"].as_array().unwrap().contains(&held[0]));
    assert_eq!(config["classes"]["id_classes"].as_array().unwrap().len(), id_classes.len() - 1);
    assert_eq!(config["settings"]["eval"]["validation_only"], true);
    assert_eq!(config["settings"]["train"], baseline["settings"]["train"], "the baseline's training, on fewer classes");
    // Neither it nor a trial has a test set's metric.
    let sets = query(
        &home,
        &format!("SELECT DISTINCT ood_set FROM ood_metrics WHERE run_id = '{parent}' OR run_id IN (SELECT run_id FROM tune_trials)"),
    );
    assert_eq!(sets, vec![serde_json::json!({"ood_set": "val_ood"})]);

    // A trial's validation OOD images are the ID training images of the held-out class: as many
    // as the sample's training labels count of it (gzip and the IDX header read here).
    let class = held[0].as_u64().unwrap() as u8;
    let labels =
        run_ok(std::process::Command::new("gzip").arg("-dc").arg(sample().join("fashion-mnist/train-labels-idx1-ubyte.gz"))).stdout;
    let count = labels[8..].iter().filter(|&&l| l == class).count();
    let trial = query(&home, "SELECT run_id FROM tune_trials ORDER BY trial, rung LIMIT 1")[0]["run_id"].as_str().unwrap().to_string();
    let scores = shapes(&home.join("runs/t").join(&trial).join("scores.safetensors"));
    assert_eq!(scores["val_ood.msp"], serde_json::json!([count.min(2000)]), "{scores:?}");
    // Its logits are those of the classes it trained on: one fewer than the baseline's.
    assert_eq!(scores["val_ood.logits"][1], serde_json::json!(id_classes.len() - 1));

    // The final runs train on every ID class, from the written baselines.
    let finals = query(
        &home,
        "SELECT r.parent_id, r.config FROM experiment_runs er JOIN runs r ON r.id = er.run_id WHERE er.experiment = 't' AND er.entry = 'oe'",
    );
    assert_eq!(finals.len(), 2);
    for f in &finals {
        let c: Value = serde_json::from_str(f["config"].as_str().unwrap()).unwrap();
        assert!(c["classes"].get("val_classes").is_none() && c["classes"]["id_classes"].as_array().unwrap() == id_classes);
        assert!(baselines
            .iter()
            .chain(&query(&home, "SELECT id FROM runs WHERE seed = 1 AND method = 'ce' AND parent_id IS NULL"))
            .any(|b| b["id"] == f["parent_id"]));
    }
    assert_eq!(query(&home, CHOICE).len(), 1);
    let plan = run_ok(oodlab(&home).arg("plan").arg(&spec));
    assert!(
        text(&plan.stdout).contains("on 1 of each split's ID classes (drawn with seed 0), held out of the trials' training"),
        "{}",
        text(&plan.stdout)
    );

    // The store lost and rebuilt: the parent trained for the search is there again, done.
    let record = query(&home, RECORD);
    std::fs::remove_file(home.join("oodlab.db")).unwrap();
    run_ok(oodlab(&home).args(["store", "rebuild"]));
    assert_eq!(query(&home, RECORD), record);
    assert_eq!(query(&home, &format!("SELECT status FROM runs WHERE id = '{parent}'")), vec![serde_json::json!({"status": "done"})]);
    let out = run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "1"]));
    assert!(text(&out.stderr).contains("all 4 runs of `t` are already done; nothing to run"), "{}", text(&out.stderr));
}
