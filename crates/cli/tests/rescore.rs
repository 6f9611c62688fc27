//! Post-hoc detectors end to end: scored at evaluation when the spec lists them, added later to
//! finished runs by `oodlab rescore` (from saved features, or from the checkpoint when a run has
//! none) with the same values, idempotent, resuming where an earlier rescore stopped; compared
//! with `oodlab compare --rows score`; bad input named.

mod common;

use std::collections::BTreeMap;

use common::*;

const DETECTORS: [&str; 8] = ["gen", "knn", "react", "ash", "mahalanobis", "rmds", "vim", "odin"];

/// (run, score, OOD set) → (AUROC, FPR@95) of an experiment's results.
fn results(home: &std::path::Path, experiment: &str) -> BTreeMap<(String, String, String), (f64, f64)> {
    let out = run_ok(oodlab(home).args(["results", experiment, "--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            ((s("run_id"), s("score"), s("ood_set")), (r["auroc"].as_f64().unwrap(), r["fpr95"].as_f64().unwrap()))
        })
        .collect()
}

fn rescore(home: &std::path::Path, args: &[&str]) -> String {
    let out = run_ok(oodlab(home).arg("rescore").args(args));
    text(&out.stderr)
}

#[test]
fn rescore_adds_the_detectors_evaluation_computes_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write_spec(dir.path(), &spec_text("det", "  baseline: {method: ce}", "  seeds: [0, 1]", ""));
    let with_dir = dir.path().join("with");
    std::fs::create_dir_all(&with_dir).unwrap();
    let eval = format!("eval: {{scores: [msp, maxlogit, energy, {}]}}", DETECTORS.join(", "));
    let with = write_spec(&with_dir, &spec_text("det", "  baseline: {method: ce}", "  seeds: [0, 1]", &eval));

    // Scored at evaluation, in one home.
    let (home_eval, home_later) = (dir.path().join("eval"), dir.path().join("later"));
    run_ok(oodlab(&home_eval).arg("run").arg(&with));
    let at_eval = results(&home_eval, "det");
    // Trained without detectors in another: the same run ids (detectors are not part of a run).
    run_ok(oodlab(&home_later).arg("run").arg(&plain));
    let ids = |home| statuses(home, "det").iter().map(|r| r["run_id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&home_eval), ids(&home_later));
    let before = results(&home_later, "det");
    assert!(before.keys().all(|(_, score, _)| ["msp", "maxlogit", "energy"].contains(&score.as_str())), "{before:?}");
    assert_eq!(before.len(), 2 * 3 * 2, "2 runs x 3 scores x 2 OOD sets");
    for ((run, score, set), v) in &before {
        assert_eq!(at_eval[&(run.clone(), score.clone(), set.clone())], *v);
    }

    // One run lost its features: rescore extracts them from the checkpoint. A first rescore
    // that did only knn stands for one that was interrupted.
    let seed1 = &ids(&home_later)[1];
    let folder = run_detail(&home_later, seed1)["run_dir"].as_str().unwrap().to_string();
    std::fs::remove_file(std::path::Path::new(&folder).join("features.safetensors")).unwrap();
    let first = rescore(&home_later, &[plain.to_str().unwrap(), "--scores", "knn"]);
    assert!(first.contains("2 run(s) rescored"), "{first}");
    // Each rescore was a worker job the scheduler ran on a slot, in its own files; the run's
    // training files are as they were.
    assert!(first.contains(&format!("start  {seed1} rescore knn: baseline seed=1 split=0 on cpu:")), "{first}");
    let folder = std::path::Path::new(&folder);
    assert!(folder.join("features.safetensors").exists(), "extracted again from the checkpoint");
    let log = std::fs::read_to_string(folder.join("rescore-stderr.log")).unwrap();
    assert!(log.contains("features extracted again from"), "{log}");
    assert!(std::fs::read_to_string(folder.join("rescore-events.jsonl")).unwrap().contains("detector.knn.k"));
    assert!(std::fs::read_to_string(folder.join("events.jsonl")).unwrap().contains("\"event\":\"epoch\""));
    let second = rescore(&home_later, &[with.to_str().unwrap()]);
    assert!(second.contains("2 run(s) rescored, 0 already had"), "{second}");
    assert!(
        second.contains("rescore gen, react, ash, mahalanobis, rmds, vim, odin: baseline") && !second.contains("rescore knn"),
        "{second}"
    );
    // The runs stay done with one attempt each: a rescore is not a training attempt.
    for r in statuses(&home_later, "det") {
        assert_eq!((r["status"].as_str(), r["attempts"].as_i64()), (Some("done"), Some(1)), "{r}");
    }
    let after = results(&home_later, "det");
    assert_eq!(after.len(), 2 * 11 * 2);
    // The same values as at evaluation, bit for bit (the same features, the same computation).
    assert_eq!(after, at_eval);
    // Twice in a row changes nothing.
    let third = rescore(&home_later, &[with.to_str().unwrap()]);
    assert!(third.contains("0 run(s) rescored, 2 already had"), "{third}");
    assert_eq!(results(&home_later, "det"), at_eval);
    // The hyperparameters are in the run's detail.
    let detail = text(&run_ok(oodlab(&home_later).args(["status", "--run", seed1])).stdout);
    assert!(detail.contains("knn (k=50 train_features=360)") && detail.contains("vim (dim=4 train_features=360)"), "{detail}");

    // Detectors as rows: each with its runs, the paired tests against one of them.
    let out = run_ok(oodlab(&home_later).args(["compare", "det", "--rows", "score", "--baseline", "msp", "--format", "json"]));
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(table["row_header"], "score");
    let rows: Vec<&str> = table["rows"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(rows, ["msp", "maxlogit", "energy", "ash", "gen", "knn", "mahalanobis", "odin", "react", "rmds", "vim"]);
    let knn_heldout = &table["rows"][5]["cells"][0]["summary"];
    let expected = ids(&home_later).iter().map(|id| at_eval[&(id.clone(), "knn".into(), "heldout".into())].0).sum::<f64>() / 2.0;
    assert!((knn_heldout["mean"].as_f64().unwrap() - expected).abs() < 1e-12, "{knn_heldout}");
    assert_eq!(knn_heldout["n"], 2);
    let md = text(&run_ok(oodlab(&home_later).args(["compare", "det", "--rows", "score", "--format", "markdown"])).stdout);
    assert!(md.starts_with("| score | heldout | mnist |"), "{md}");
    // One detector picked as the score of an ordinary comparison.
    let out = run_ok(oodlab(&home_later).args(["compare", "det", "--score", "rmds", "--format", "json"]));
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = ids(&home_later).iter().map(|id| at_eval[&(id.clone(), "rmds".into(), "mnist".into())].0).sum::<f64>() / 2.0;
    assert!((table["rows"][0]["cells"][1]["summary"]["mean"].as_f64().unwrap() - expected).abs() < 1e-12);
}

#[test]
fn rescore_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let spec = write_spec(
        dir.path(),
        &spec_text("bad", "  baseline: {method: ce}\n  again: {method: ce, train: {epochs: 2}}", "  seeds: [0]", ""),
    );
    run_ok(oodlab(&home).arg("run").arg(&spec));
    let fails = |args: &[&str]| {
        let out = oodlab(&home).arg("rescore").arg(&spec).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let e = fails(&[]);
    assert!(e.contains("lists no post-hoc detector in eval.scores") && e.contains("--scores"), "{e}");
    let e = fails(&["--scores", "knm"]);
    assert!(e.contains("unknown detector `knm`; did you mean `knn`?"), "{e}");
    let e = fails(&["--scores", "energy"]);
    assert!(e.contains("`energy` is computed from the logits"), "{e}");
    // Detectors as rows need one entry.
    let out = oodlab(&home).args(["compare", "bad", "--rows", "score"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("pick it with --entry (one of baseline, again)"), "{}", text(&out.stderr));
    // A run with neither features nor a checkpoint cannot be rescored; the others are.
    let runs = statuses(&home, "bad");
    let folder = run_detail(&home, runs[0]["run_id"].as_str().unwrap())["run_dir"].as_str().unwrap().to_string();
    for f in ["features.safetensors", "checkpoint.safetensors"] {
        std::fs::remove_file(std::path::Path::new(&folder).join(f)).unwrap();
    }
    let out = oodlab(&home).arg("rescore").arg(&spec).args(["--scores", "knn"]).output().unwrap();
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("has neither features.safetensors nor checkpoint.safetensors: the run has to be trained again"), "{err}");
    assert!(err.contains("1 run(s) rescored") && err.contains("1 failed"), "{err}");
}

#[test]
fn a_scheduler_already_on_the_home_runs_the_rescore_as_jobs_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (det_dir, busy_dir) = (dir.path().join("det"), dir.path().join("busy"));
    std::fs::create_dir_all(&det_dir).unwrap();
    std::fs::create_dir_all(&busy_dir).unwrap();
    let det = write_spec(&det_dir, &spec_text("det2", "  baseline: {method: ce}", "  seeds: [0, 1]", ""));
    run_ok(oodlab(&home).arg("run").arg(&det));
    // A longer grid keeps a background scheduler at work on the home.
    let busy = write_spec(&busy_dir, &sized(spec_text("busy", "  baseline: {method: ce}", "  seeds: [0, 1, 2]", ""), 1500, 4));
    run_ok(oodlab(&home).arg("run").arg(&busy).args(["--detach", "--jobs", "1"]));
    wait_for("a running run of busy", || try_statuses(&home, "busy").iter().any(|r| r["status"] == "running"));

    let out = run_ok(oodlab(&home).arg("rescore").arg(&det).args(["--scores", "knn,odin"]));
    let said = text(&out.stderr);
    assert!(said.contains("a scheduler is running on") && said.contains("the rescore of `det2` (2 run(s)) is queued there"), "{said}");
    assert!(said.contains("`det2`: 2 run(s) rescored, 0 already had knn, odin, 0 not finished (skipped), 0 failed"), "{said}");
    // That scheduler recorded the detectors' results; the runs stay done, one attempt each.
    let rows = results(&home, "det2");
    for id in statuses(&home, "det2").iter().map(|r| r["run_id"].as_str().unwrap().to_string()) {
        for score in ["knn", "odin"] {
            assert!(rows.contains_key(&(id.clone(), score.into(), "heldout".into())), "{id} {score}: {rows:?}");
        }
    }
    assert!(statuses(&home, "det2").iter().all(|r| r["status"] == "done" && r["attempts"] == 1));
    // It served the rescore as a grid of its own kind, beside the training grid, which finished.
    // The grid ends just after its last run is recorded done (another statement): waited for.
    let queue = || {
        let ls = run_ok(oodlab(&home).args(["queue", "ls", "--format", "json"]));
        serde_json::from_slice::<serde_json::Value>(&ls.stdout).unwrap()
    };
    wait_for("the busy grid to finish", || {
        queue()["grids"].as_array().unwrap().iter().any(|g| g["experiment"] == "busy" && g["state"] != "queued")
    });
    assert!(try_statuses(&home, "busy").iter().all(|r| r["status"] == "done"));
    let q = queue();
    let grids = q["grids"].as_array().unwrap();
    assert!(grids.iter().any(|g| g["experiment"] == "det2" && g["kind"] == "rescore" && g["state"] == "finished"), "{q}");
    assert!(grids.iter().any(|g| g["experiment"] == "busy" && g["kind"] == "train" && g["state"] == "finished"), "{q}");
    // Asked again, there is nothing to do, and nothing is queued.
    let again = rescore(&home, &[det.to_str().unwrap(), "--scores", "knn,odin"]);
    assert!(again.contains("0 run(s) rescored, 2 already had knn, odin") && !again.contains("queued there"), "{again}");
}
