//! Every page and API route through the router (`oneshot`), on a store written through the
//! store's API, with values worked out by hand; bad requests answer 4xx without internals.

mod common;

use axum::http::StatusCode;
use common::*;
use oodlab_web::AppState;

async fn router() -> (tempfile::TempDir, std::path::PathBuf, axum::Router) {
    let (dir, home) = home().await;
    let state = AppState::open(&home, Some(&repo_dashboards())).await.unwrap();
    (dir, home, oodlab_web::router(state))
}

#[tokio::test]
async fn pages_show_the_experiments_runs_charts_and_comparison() {
    let (_dir, _home, r) = router().await;

    let (status, body) = get(&r, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("href=\"/experiments/exp\"") && body.contains("href=\"/experiments/other\""), "{body}");

    let (status, body) = get(&r, "/experiments/exp").await;
    assert_eq!(status, StatusCode::OK);
    // Progress, one row per run with its status, the failure reason, and the overview's panels.
    assert!(body.contains("<b class=\"count-done\">1</b> done, <b class=\"count-running\">1</b> running, <b>1</b> pending"), "{body}");
    for id in ["a1", "a2", "a3", "a4"] {
        assert!(body.contains(&format!("href=\"/runs/{id}\"")), "{id}");
    }
    assert!(!body.contains("href=\"/runs/b1\""), "a run of another experiment");
    assert!(body.contains("CUDA out of memory at epoch 2"));
    assert!(body.contains("data-kind=\"roc\"><svg") && body.contains("data-kind=\"line\"><svg") && body.contains("data-kind=\"bar\"><svg"));
    assert!(body.contains("src=\"/assets/app.js\""));
    for remote in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "url(http", "@import"] {
        assert!(!body.contains(remote), "nothing remote: {remote}");
    }

    // Paging and sorting links keep the other parameters.
    let (status, body) = get(&r, "/experiments/exp?limit=2&status=pending").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("1 of 1 runs") && !body.contains("next →"), "{body}");
    let (_, body) = get(&r, "/experiments/exp?limit=2&sort=seed").await;
    assert!(body.contains("href=\"?limit=2&amp;sort=seed&amp;offset=2\">next →"), "{body}");
    assert!(body.contains("href=\"?limit=2&amp;sort=seed&amp;desc=1\">seed ▴"), "{body}");
    let (_, body) = get(&r, "/experiments/exp?field=train.optimizer.lr&value=0.01").await;
    assert!(body.contains("3 of 3 runs") && !body.contains("href=\"/runs/a1\""), "the form's field filter");

    let (status, body) = get(&r, "/experiments/exp?dashboard=training").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Training loss per epoch") && body.contains("data-kind=\"line\"><svg"));

    let (status, body) = get(&r, "/experiments/exp/compare?metric=auroc&score=msp").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<td>baseline</td>") && body.contains("0.875"), "{body}");

    let (status, body) = get(&r, "/runs/a1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("data-kind=\"roc\"><svg")
            && body.contains("data-kind=\"histogram\"><svg")
            && body.contains("data-kind=\"line\"><svg")
    );
    assert!(body.contains("AUROC 0.875"), "the ROC legend, from the saved scores");
    assert!(body.contains("&quot;lr&quot;: 0.1"), "the config");
    assert!(body.contains("href=\"/runs/a1/files/scores.safetensors\""));

    let (status, body) = get(&r, "/runs/a2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("CUDA out of memory at epoch 2") && body.contains("Traceback"));

    let (status, body) = get(&r, "/runs/a1/files/events.jsonl").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "{}\n"));
    for asset in ["/assets/app.js", "/assets/style.css"] {
        let (status, body) = get(&r, asset).await;
        assert!(status == StatusCode::OK && body.len() > 200, "{asset}");
    }
}

#[tokio::test]
async fn the_api_filters_sorts_pages_and_computes_curves() {
    let (_dir, _home, r) = router().await;

    let all = get_json(&r, "/api/experiments").await;
    let exp = all["experiments"].as_array().unwrap().iter().find(|e| e["name"] == "exp").unwrap().clone();
    let p = &exp["progress"];
    assert_eq!(
        (p["total"].as_i64(), p["done"].as_i64(), p["failed"].as_i64(), p["pending"].as_i64(), p["running"].as_i64()),
        (Some(4), Some(1), Some(1), Some(1), Some(1))
    );
    assert_eq!(get_json(&r, "/api/experiments/exp").await["progress"], *p);

    let ids =
        |v: &serde_json::Value| v["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let v = get_json(&r, "/api/experiments/exp/runs").await;
    assert_eq!((v["total"].as_i64(), ids(&v)), (Some(4), vec!["a1".to_string(), "a2".into(), "a3".into(), "a4".into()]));
    let v = get_json(&r, "/api/experiments/exp/runs?status=failed").await;
    assert_eq!(ids(&v), ["a2"]);
    assert_eq!(v["runs"][0]["failure"], "CUDA out of memory at epoch 2");
    assert_eq!(ids(&get_json(&r, "/api/experiments/exp/runs?failure=out%20of%20memory").await), ["a2"]);
    assert_eq!(ids(&get_json(&r, "/api/experiments/exp/runs?f.train.optimizer.lr=0.01").await), ["a2", "a3", "a4"]);
    assert_eq!(ids(&get_json(&r, "/api/experiments/exp/runs?f.method.name=ce").await), ["a1"]);
    assert_eq!(ids(&get_json(&r, "/api/experiments/exp/runs?f.seed=1").await), ["a3"], "a top-level field");
    assert_eq!(ids(&get_json(&r, "/api/experiments/exp/runs?sort=seed&desc=1").await), ["a4", "a3", "a1", "a2"]);
    assert_eq!(ids(&get_json(&r, "/api/experiments/exp/runs?sort=train.optimizer.lr&desc=1").await)[0], "a1");
    let v = get_json(&r, "/api/experiments/exp/runs?limit=2&offset=2").await;
    assert_eq!((v["total"].as_i64(), ids(&v)), (Some(4), vec!["a3".to_string(), "a4".into()]));

    let t = get_json(&r, "/api/experiments/exp/compare?metric=auroc&score=msp").await;
    assert_eq!(t["rows"][0]["name"], "baseline");
    assert_eq!(t["rows"][0]["cells"][0]["summary"]["mean"], 0.875);
    let (status, csv) = get(&r, "/api/experiments/exp/compare?metric=auroc&format=csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.contains("\nbaseline,heldout,1,0.875,"), "{csv}");

    // ROC from the saved scores: the panel's curve ends at (1, 1) and its legend gives the AUROC
    // of the 16 pairs by hand (14/16).
    let overview =
        get_json(&r, "/api/dashboards").await["dashboards"].as_array().unwrap().iter().position(|d| d["name"] == "overview").unwrap();
    assert_eq!(overview, 0);
    let panels = get_json(&r, "/api/dashboards").await["dashboards"][0]["panels"].clone();
    let roc_index = panels.as_array().unwrap().iter().position(|p| p["chart"] == "roc").unwrap();
    let v = get_json(&r, &format!("/api/experiments/exp/panels/overview/{roc_index}")).await;
    let series = &v["output"]["chart"]["series"][0];
    assert!(series["name"].as_str().unwrap().contains("AUROC 0.875"), "{v}");
    assert_eq!(series["points"].as_array().unwrap().last().unwrap(), &serde_json::json!([1.0, 1.0]));

    let v = get_json(&r, "/api/runs/a1").await;
    assert_eq!(v["epochs"].as_array().unwrap().len(), 3);
    assert_eq!(v["epochs"][2]["train_loss"], 0.75);
    assert_eq!(v["config"]["settings"]["train"]["optimizer"]["lr"], 0.1);
    assert_eq!(v["experiments"], serde_json::json!(["exp"]));
    let v = get_json(&r, "/api/runs/a1/curves?score=msp").await;
    let kinds: Vec<&str> = v["charts"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["line", "line", "roc", "histogram", "scatter"]);
    // The ROC's points (FPR of ID, TPR of held-out), lowering the bar for "OOD" one distinct score
    // at a time, worked out by hand: 0.3, 0.4, 0.5 are held-out images (TPR up), 0.6 and 0.7 ID
    // (FPR up), 0.75 held-out, 0.8 and 0.9 ID. Its area is 0.5·0.75 + 0.5·1 = 0.875.
    let roc = &v["charts"][2]["chart"]["series"][0]["points"];
    let expected = [(0.0, 0.0), (0.0, 0.25), (0.0, 0.5), (0.0, 0.75), (0.25, 0.75), (0.5, 0.75), (0.5, 1.0), (0.75, 1.0), (1.0, 1.0)];
    assert_eq!(roc, &serde_json::json!(expected));
    let hist = &v["charts"][3]["chart"]["series"];
    assert_eq!(hist.as_array().unwrap().len(), 2, "ID and held-out");
}

#[tokio::test]
async fn bad_requests_answer_4xx_without_internals() {
    let (dir, _home, r) = router().await;
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("home/runs/exp/a1/link.txt")).unwrap();

    let cases: &[(&str, StatusCode)] = &[
        ("/experiments/nope", StatusCode::NOT_FOUND),
        ("/api/experiments/nope", StatusCode::NOT_FOUND),
        ("/api/experiments/nope/runs", StatusCode::NOT_FOUND),
        ("/api/experiments/nope/compare", StatusCode::NOT_FOUND),
        ("/experiments/nope/compare", StatusCode::NOT_FOUND),
        ("/runs/nope", StatusCode::NOT_FOUND),
        ("/api/runs/nope", StatusCode::NOT_FOUND),
        ("/api/runs/nope/curves", StatusCode::NOT_FOUND),
        ("/no/such/page", StatusCode::NOT_FOUND),
        ("/assets/secret.txt", StatusCode::NOT_FOUND),
        ("/experiments/exp?dashboard=nope", StatusCode::NOT_FOUND),
        ("/api/experiments/exp/panels/nope/0", StatusCode::NOT_FOUND),
        ("/api/experiments/exp/panels/overview/99", StatusCode::NOT_FOUND),
        ("/api/experiments/exp/runs?status=exploded", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/runs?sort=id;DROP%20TABLE%20runs", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/runs?sort=r.id%20DESC%20--", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/runs?f.train')%20OR%201=1%20--=1", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/runs?limit=0", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/runs?limit=abc", StatusCode::BAD_REQUEST),
        ("/experiments/exp?status=exploded", StatusCode::BAD_REQUEST),
        ("/experiments/exp?field=a%20b&value=1", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/compare?metric=nope", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/compare?score=nope", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/compare?rows=a;b", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/compare?rows=no.such.field", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/compare?format=docx", StatusCode::BAD_REQUEST),
        ("/api/experiments/exp/compare?baseline=nope", StatusCode::BAD_REQUEST),
        ("/api/runs/a1/curves?score=nope", StatusCode::BAD_REQUEST),
        ("/runs/a1?score=nope", StatusCode::BAD_REQUEST),
        // Leaving the run's folder: `..` (plain and percent-encoded), a link to a file outside.
        ("/runs/a1/files/../../../../etc/passwd", StatusCode::BAD_REQUEST),
        ("/runs/a1/files/%2e%2e/%2e%2e/oodlab.db", StatusCode::BAD_REQUEST),
        ("/runs/a1/files/..%2F..%2Foodlab.db", StatusCode::BAD_REQUEST),
        ("/runs/a1/files/%2Fetc%2Fpasswd", StatusCode::BAD_REQUEST),
        ("/runs/a1/files/link.txt", StatusCode::NOT_FOUND),
        ("/runs/a1/files/missing.bin", StatusCode::NOT_FOUND),
        ("/runs/nope/files/scores.safetensors", StatusCode::NOT_FOUND),
    ];
    for (uri, expected) in cases {
        let (status, body) = get(&r, uri).await;
        assert_eq!(status, *expected, "{uri}: {body}");
        for leak in ["sqlx", "SELECT", "sqlite", "panicked", "TOP-SECRET", "root:", dir.path().to_str().unwrap()] {
            assert!(!body.contains(leak), "{uri} leaks `{leak}`: {body}");
        }
    }
    // API errors are JSON with a message saying what to use.
    let (_, body) = get(&r, "/api/experiments/exp/runs?status=exploded").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("expected pending, running, done, failed or interrupted"));
    // The tables are intact after the injection attempts.
    assert_eq!(get_json(&r, "/api/experiments/exp/runs").await["total"], 4);
}

#[tokio::test]
async fn the_server_never_writes_and_sees_what_the_scheduler_writes() {
    let (_dir, home, r) = router().await;
    let db = home.join("oodlab.db");
    let before = std::fs::read(&db).unwrap();
    for uri in ["/", "/experiments/exp", "/experiments/exp?dashboard=training", "/experiments/exp/compare", "/runs/a1", "/api/experiments"]
    {
        get(&r, uri).await;
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "the database file is unchanged");

    // The scheduler (another writer) finishes a4: the server's next answer shows it.
    let writer = oodlab_store::Store::open(&db).await.unwrap();
    writer.end_attempt("a4", &oodlab_store::Outcome::Done { exit_code: 0 }).await.unwrap();
    writer.close().await;
    let p = get_json(&r, "/api/experiments/exp").await["progress"].clone();
    assert_eq!((p["done"].as_i64(), p["running"].as_i64()), (Some(2), Some(0)));
    let (_, page) = get(&r, "/experiments/exp").await;
    assert!(page.contains("<b class=\"count-done\">2</b> done"));
}

#[tokio::test]
async fn a_collapsed_fine_tune_is_flagged_on_every_page() {
    use oodlab_protocol::Event;
    use oodlab_store::{NewRun, Outcome, Store};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("runs")).unwrap();
    let store = Store::open(&home.join("oodlab.db")).await.unwrap();
    let new = |id: &str, entry: &str, parent: Option<&str>| NewRun {
        id: id.into(),
        entry: entry.into(),
        method: if parent.is_some() { "lmoe" } else { "ce" }.into(),
        seed: 0,
        split: 0,
        parent_id: parent.map(Into::into),
        config_json: r#"{"seed": 0, "split": 0, "settings": {"data": {"id": "fashion"}}}"#.into(),
        grid_json: "{}".into(),
        run_dir: home.join("runs/flags").join(id).display().to_string(),
    };
    store.register("flags", "flags.yaml", "name: flags", &[new("p1", "baseline", None), new("c1", "lmoe", Some("p1"))]).await.unwrap();
    // The baseline at 94.0%, the fine-tune at 50.1%: 43.9 points below.
    for (id, acc) in [("p1", 0.94), ("c1", 0.501)] {
        store.start_attempt(id, "cpu:0", "host", None).await.unwrap();
        store.record_event(id, &Event::Metric { name: "id_acc".into(), value: acc }).await.unwrap();
        store.record_event(id, &ood("heldout", "msp", 0.7)).await.unwrap();
        store.end_attempt(id, &Outcome::Done { exit_code: 0 }).await.unwrap();
    }
    store.close().await;
    let r = oodlab_web::router(AppState::open(&home, Some(&repo_dashboards())).await.unwrap());
    let detail = "ID accuracy 50.1% is 43.9 points below its parent&#39;s 94.0% (eval.max_acc_drop 5)";
    let (status, body) = get(&r, "/experiments/flags").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<h2>Flagged runs <small>(1)</small></h2>") && body.contains(detail), "{body}");
    assert!(body.contains("<td class=\"flags\"><span class=\"flag\""), "the runs table's flags column");
    // Above the fold, beside the comparison, which marks the flagged run's cells.
    let (overview, rest) = body.split_once("<nav class=\"dashboards\">").unwrap();
    assert!(
        overview.contains("<aside id=\"flags\">") && overview.contains("<section id=\"summary\">") && overview.contains("(1) ‡"),
        "{overview}"
    );
    assert!(!rest.contains("id=\"flags\""), "once");
    // The landing page: one flagged run; both entries at 0.7, the tie to the first by name.
    let (_, body) = get(&r, "/").await;
    assert!(body.contains("<td class=\"flagged\">1</td><td class=\"best\">baseline <small>0.7000</small></td>"), "{body}");
    let (_, body) = get(&r, "/runs/c1").await;
    assert!(body.contains("<th>flagged</th><td>acc-drop: ID accuracy 50.1%"), "{body}");
    let (_, body) = get(&r, "/runs/p1").await;
    assert!(!body.contains("flagged"), "the parent is not flagged");
    let (_, body) = get(&r, "/experiments/flags/compare?metric=auroc&score=msp").await;
    // The fine-tune's cells (heldout and its near average) hold its flagged run; the baseline's
    // none.
    assert!(body.contains("<tr><td>lmoe</td><td><b>0.700 ± - (1) ‡</b></td><td><b>0.700 ± - (1) ‡</b></td>"), "{body}");
    assert_eq!(body.matches("(1) ‡").count(), 2, "{body}");
    assert!(body.contains("‡ = includes runs flagged"), "{body}");
    let v = get_json(&r, "/api/runs/c1").await;
    assert_eq!(v["flags"][0]["flag"], "acc-drop");
}

#[tokio::test]
async fn a_tuned_entry_s_search_is_shown_on_the_experiment_page() {
    use oodlab_protocol::Event;
    use oodlab_store::{ChoiceRow, NewGrid, NewRun, NewTrialRung, Outcome, QueuedRun, Store};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("runs")).unwrap();
    let store = Store::open(&home.join("oodlab.db")).await.unwrap();
    let new = |id: &str, entry: &str, parent: Option<&str>| NewRun {
        id: id.into(),
        entry: entry.into(),
        method: if parent.is_some() { "oe" } else { "ce" }.into(),
        seed: 0,
        split: 0,
        parent_id: parent.map(Into::into),
        config_json: r#"{"seed": 0, "split": 0, "settings": {"data": {"id": "fashion"}}}"#.into(),
        grid_json: "{}".into(),
        run_dir: home.join("runs/tuned").join(id).display().to_string(),
    };
    let job = |id: &str, after: Option<&str>| QueuedRun {
        run_id: id.into(),
        parent_id: after.map(Into::into),
        label: id.into(),
        job: "{}".into(),
    };
    let grid = NewGrid {
        experiment: "tuned".into(),
        spec_path: "tuned.yaml".into(),
        spec_yaml: "name: tuned".into(),
        runs: vec![new("p1", "baseline", None)],
        jobs: vec![job("p1", None)],
        priority: 0,
        max_slots: None,
        retries: 0,
        slurm: None,
        rescore: false,
        stall_timeout: None,
        retry_delay: None,
        notify: None,
    };
    let queue = store.enqueue(&grid).await.unwrap();
    // Trial 0 (weight 0.1) at rungs 0 and 1 (1 and 2 epochs), trial 1 (weight 2) at rung 0; a
    // budget of 4 epochs, 3 spent (trial 0's 2, trial 1's 1).
    let rung = |trial: i64, rung: i64, weight: f64| NewTrialRung {
        search: "s1".into(),
        experiment: "tuned".into(),
        entry: "oe".into(),
        trial,
        rung,
        epochs: rung + 1,
        point: "[0]".into(),
        values: format!("[[\"method.weight\",{weight}]]"),
        metric: "auroc".into(),
        score: "msp".into(),
        budget_epochs: 4,
    };
    for (r, id, after, auroc) in
        [(rung(0, 0, 0.1), "t0", None, 0.6), (rung(1, 0, 2.0), "t1", None, 0.7), (rung(0, 1, 0.1), "t0b", Some("t0"), 0.8)]
    {
        store.add_trial_rung(queue, &r, &[new(id, "oe", Some("p1"))], &[job(id, after.or(Some("p1")))]).await.unwrap();
        store.start_attempt(id, "cpu:0", "host", None).await.unwrap();
        store.record_event(id, &ood("val_ood", "msp", auroc)).await.unwrap();
        store.end_attempt(id, &Outcome::Done { exit_code: 0 }).await.unwrap();
    }
    let choice = ChoiceRow {
        search: "s1".into(),
        experiment: "tuned".into(),
        entry: "oe".into(),
        trial: Some(0),
        field_values: Some("[[\"method.weight\",0.1]]".into()),
        objective: Some(0.8),
        spent_epochs: 3,
        budget_epochs: 4,
        chosen_at: "2026-12-07T15:00:00.000Z".into(),
    };
    assert_eq!(store.add_choice(queue, &choice, &[new("f1", "oe", Some("p1"))], &[job("f1", Some("p1"))]).await.unwrap(), ["f1"]);
    store.record_event("p1", &Event::Metric { name: "id_acc".into(), value: 0.9 }).await.unwrap();
    store.close().await;

    let r = oodlab_web::router(AppState::open(&home, Some(&repo_dashboards())).await.unwrap());
    let (status, body) = get(&r, "/experiments/tuned").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<section id=\"tuning\"><h2>Tuning</h2><h3>oe <small>search s1</small></h3>"), "{body}");
    assert!(body.contains("3 of 4 epochs spent; objective: auroc of msp on the validation OOD set"), "{body}");
    assert!(body.contains("<b>chosen: trial 0, method.weight=0.1 (objective 0.8000)</b>"), "{body}");
    assert!(body.contains("<tr><td>0</td><td>1</td><td>2</td><td>method.weight=0.1</td><td>1/1</td><td>0.8000</td></tr>"), "{body}");
    assert!(body.contains("<tr><td>1</td><td>0</td><td>1</td><td>method.weight=2</td><td>1/1</td><td>0.7000</td></tr>"), "{body}");
    // An experiment without a search has no section.
    let (_dir, _home, plain) = router().await;
    let (_, body) = get(&plain, "/experiments/exp").await;
    assert!(body.contains("<h1>exp</h1>") && !body.contains("id=\"tuning\""), "{body}");
}

#[tokio::test]
async fn the_latest_audit_of_an_experiment_is_shown_on_its_page() {
    use oodlab_audit::{audit, Hashed, Near};
    // Findings made by the audit's own code: roles a (2 images) and b (1), b's image equal to
    // a's first (exact), a's two images within 3 bits of each other but not equal (near, a with
    // itself) — thumbnails alike so the pixel check passes.
    let thumb: Vec<u8> = (0..1024).map(|i| (i % 256) as u8).collect();
    let hashed = |near: &[u64], exact: &[u8]| Hashed {
        exact: exact.iter().map(|&e| [e; 16]).collect(),
        near: near.to_vec(),
        thumbs: near.iter().flat_map(|_| thumb.clone()).collect(),
        positions: (0..near.len()).map(|i| 10 + i).collect(),
    };
    let mut findings = audit(
        &[("a".into(), hashed(&[0b0, 0b111], &[1, 2])), ("b".into(), hashed(&[0b0], &[1]))],
        Near { distance: 3, correlation: 0.9 },
        5,
        1,
    );
    // By features: a's rows (1, 0) and (0, 1), b's (1, 0.001) — cosine 0.9999995 with a's first
    // (centred on nothing), at position 20 of b's file.
    let role = |name: &str, features: Vec<f32>, positions: Vec<usize>| oodlab_audit::features::FeatureRole {
        name: name.into(),
        indices: (0..positions.len()).collect(),
        features,
        positions,
    };
    findings.features = Some(
        oodlab_audit::features::by_features(
            "base1",
            &[role("a", vec![1.0, 0.0, 0.0, 1.0], vec![10, 11]), role("b", vec![1.0, 0.001], vec![20])],
            2,
            &[0.0, 0.0],
            0.9999,
            5,
        )
        .unwrap(),
    );
    let (_dir, home, _) = router().await;
    let store = oodlab_store::Store::open(&home.join("oodlab.db")).await.unwrap();
    store.record_audit("exp", 0, 0, "r1", &serde_json::to_string(&findings).unwrap()).await.unwrap();
    store.close().await;
    let r = oodlab_web::router(AppState::open(&home, Some(&repo_dashboards())).await.unwrap());
    let (status, body) = get(&r, "/experiments/exp").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<section id=\"audit\"><h2>Data roles</h2><h3>Split 0 <small>the data of run"), "{body}");
    assert!(body.contains("hashes within 3 of 64 bits, pixels correlating ≥ 0.9"), "{body}");
    // a with itself: 0 exact, 1 near (3 bits); a with b: 1 exact (marked) and 1 near (a's second
    // image is 3 bits from b's); b alone.
    assert!(body.contains("<tr><th>a</th><td>2</td><td>0 / 1</td><td class=\"leak\">1 / 1</td></tr>"), "{body}");
    assert!(body.contains("<tr><th>b</th><td>1</td><td></td><td>0 / 0</td></tr>"), "{body}");
    // The closest pairs between the roles, by position: a's 10 and b's 10 exact, then a's 11.
    assert!(body.contains("<tr><td>exact</td><td>a</td><td>10</td><td>b</td><td>10</td></tr><tr><td>3 bits, r 1.000</td><td>a</td><td>11</td><td>b</td><td>10</td></tr>"), "{body}");
    // By features: b's one image is near a's first.
    assert!(
        body.contains("By the features of baseline run <a href=\"/runs/base1\">base1</a>") && body.contains("cosine ≥ 0.9999."),
        "{body}"
    );
    assert!(body.contains("<tr><th>a</th><td>2</td><td></td><td class=\"leak\">1</td></tr>"), "{body}");
    assert!(body.contains("<tr><td>1.00000</td><td>a</td><td>10</td><td>b</td><td>20</td></tr>"), "{body}");
    // An experiment never audited has no section.
    let (_, body) = get(&r, "/experiments/other").await;
    assert!(!body.contains("id=\"audit\""), "{body}");
}
