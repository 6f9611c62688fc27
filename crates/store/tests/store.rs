//! The store keeps runs, attempts and results consistent across attempts and readers.

use oodlab_protocol::Event;
use oodlab_store::{NewRun, Outcome, RunStatus, Store};

fn new_run(id: &str, parent: Option<&str>) -> NewRun {
    NewRun {
        id: id.into(),
        entry: "baseline".into(),
        method: "ce".into(),
        seed: 0,
        split: 0,
        parent_id: parent.map(Into::into),
        config_json: "{}".into(),
        grid_json: "{}".into(),
        run_dir: format!("runs/x/{id}"),
    }
}

fn ood(score: &str, auroc: f64) -> Event {
    Event::OodMetric {
        ood_set: "mnist".into(),
        score: score.into(),
        auroc,
        fpr95: 0.5,
        aupr_in: 0.6,
        aupr_out: 0.7,
        tnr95: Some(0.4),
        n_id: 10,
        n_ood: 20,
    }
}

#[tokio::test]
async fn a_retry_replaces_the_failed_attempt_and_results_show_only_done_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("oodlab.db");
    let store = Store::open(&db).await.unwrap();
    store.register("x", "x.yaml", "name: x", &[new_run("a", None), new_run("b", Some("a"))]).await.unwrap();

    store.start_attempt("a", "cpu:0", "host", None).await.unwrap();
    store.record_event("a", &ood("msp", 0.1)).await.unwrap();
    store.end_attempt("a", &Outcome::Failed { exit_code: Some(10), reason: "boom".into(), stderr_tail: "tail".into() }).await.unwrap();
    // A failed run's metrics are kept for inspection but never shown as results.
    assert!(store.results("x").await.unwrap().is_empty());

    store.start_attempt("a", "cpu:1", "host", None).await.unwrap();
    store.record_event("a", &Event::Metric { name: "id_acc".into(), value: 0.9 }).await.unwrap();
    store.record_event("a", &ood("energy", 0.8)).await.unwrap();
    store.end_attempt("a", &Outcome::Done { exit_code: 0 }).await.unwrap();

    let rows = store.results("x").await.unwrap();
    assert_eq!(rows.len(), 1, "the first attempt's metric is gone");
    assert_eq!((rows[0].score.as_str(), rows[0].auroc, rows[0].id_acc), ("energy", 0.8, Some(0.9)));
    let detail = store.run_detail("a").await.unwrap().unwrap();
    assert_eq!((detail.attempts, detail.status, detail.failure), (2, RunStatus::Done, None));

    let st = store.statuses(&["a".into(), "b".into(), "zz".into()]).await.unwrap();
    assert_eq!(st.get("a"), Some(&RunStatus::Done));
    assert_eq!(st.get("b"), Some(&RunStatus::Pending));
    assert_eq!(st.get("zz"), None);
    store.close().await;

    // Registering again (a rerun) keeps the finished run's state.
    let store = Store::open(&db).await.unwrap();
    store.register("x", "x.yaml", "name: x", &[new_run("a", None), new_run("b", Some("a"))]).await.unwrap();
    assert_eq!(store.statuses(&["a".into()]).await.unwrap()["a"], RunStatus::Done);
    store.start_attempt("b", "cpu:0", "host", None).await.unwrap();
    assert_eq!(store.recover_stale().await.unwrap(), 1);
    assert_eq!(store.statuses(&["b".into()]).await.unwrap()["b"], RunStatus::Interrupted);
    store.close().await;

    let ro = Store::open_read_only(&db).await.unwrap().unwrap();
    assert!(ro.start_attempt("b", "cpu:0", "host", None).await.is_err(), "a read-only store refuses writes");
    assert!(Store::open_read_only(&dir.path().join("none.db")).await.unwrap().is_none());
}

/// A run finished with `metrics`, under parent `parent`, with `config` as its stored config.
async fn finish(store: &Store, id: &str, metrics: &[(&str, f64)]) {
    store.start_attempt(id, "cpu:0", "host", None).await.unwrap();
    for (name, value) in metrics {
        store.record_event(id, &Event::Metric { name: (*name).into(), value: *value }).await.unwrap();
    }
    store.end_attempt(id, &Outcome::Done { exit_code: 0 }).await.unwrap();
}

#[tokio::test]
async fn collapsed_fine_tunes_and_unstable_losses_are_flagged_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("oodlab.db")).await.unwrap();
    let with_config = |id: &str, config: &str| NewRun { config_json: config.into(), ..new_run(id, Some("base")) };
    let runs = [
        new_run("base", None),
        // 94.0 → 88.0: 6 points below, over the default margin of 5.
        with_config("collapsed", "{}"),
        // 94.0 → 89.5: 4.5 points, within 5 ...
        with_config("within", "{}"),
        // ... but over a margin of 4 set in the run's config.
        with_config("strict", r#"{"settings": {"eval": {"max_acc_drop": 4.0}}}"#),
        // Not finished: no flag, whatever its metrics.
        with_config("running", "{}"),
        with_config("unstable", "{}"),
    ];
    store.register("x", "x.yaml", "name: x", &runs).await.unwrap();
    finish(&store, "base", &[("id_acc", 0.94)]).await;
    finish(&store, "collapsed", &[("id_acc", 0.88), ("last_epoch_loss_rise", -0.2)]).await;
    finish(&store, "within", &[("id_acc", 0.895), ("last_epoch_loss_rise", 0.05)]).await;
    finish(&store, "strict", &[("id_acc", 0.895)]).await;
    store.start_attempt("running", "cpu:1", "host", None).await.unwrap();
    store.record_event("running", &Event::Metric { name: "id_acc".into(), value: 0.1 }).await.unwrap();
    finish(&store, "unstable", &[("id_acc", 0.94), ("last_epoch_loss_rise", 0.25), ("nonfinite_steps", 3.0)]).await;

    let flags: Vec<(String, String, String)> =
        store.experiment_flags("x").await.unwrap().into_iter().map(|f| (f.run_id, f.flag, f.detail)).collect();
    let expected = [
        ("collapsed", "acc-drop", "ID accuracy 88.0% is 6.0 points below its parent's 94.0% (eval.max_acc_drop 5)"),
        ("strict", "acc-drop", "ID accuracy 89.5% is 4.5 points below its parent's 94.0% (eval.max_acc_drop 4)"),
        ("unstable", "loss-nonfinite", "3 training steps had a NaN or infinite loss and were skipped"),
        ("unstable", "loss-rising", "the training loss rose 25% over the last epoch (mean of its second half against its first)"),
    ];
    let expected: Vec<(String, String, String)> = expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(flags, expected);
    // Flagged runs are still done and in the results.
    assert_eq!(store.run_detail("collapsed").await.unwrap().unwrap().status, RunStatus::Done);
    assert_eq!(store.run_flags("within").await.unwrap(), vec![]);
    assert_eq!(store.run_flags("strict").await.unwrap().len(), 1);
}

/// Runs of a method above a metric value: only that method's, only strictly above, by id, with
/// the value; events recorded together in one transaction are all there.
#[tokio::test]
async fn runs_of_a_method_above_a_metric_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("oodlab.db")).await.unwrap();
    let run = |id: &str, method: &str| NewRun { method: method.into(), ..new_run(id, None) };
    store.register("x", "x.yaml", "name: x", &[run("c", "lmoe"), run("a", "lmoe"), run("b", "oe"), run("d", "lmoe")]).await.unwrap();
    let auroc = |v: f64| Event::Metric { name: "auroc".into(), value: v };
    let other = Event::Metric { name: "fpr95".into(), value: 0.99 };
    let (a, b, c, d) = (auroc(0.75), auroc(0.9), auroc(0.625), auroc(0.5));
    store.record_events(&[("a", &a), ("a", &other), ("b", &b), ("c", &c), ("d", &d)]).await.unwrap();
    let found = store.runs_with_metric_above("lmoe", "auroc", 0.5).await.unwrap();
    // b is not lmoe; d is not above 0.5; fpr95 is another metric.
    assert_eq!(found, vec![("a".to_string(), 0.75), ("c".to_string(), 0.625)]);
    assert!(store.runs_with_metric_above("ce", "auroc", 0.0).await.unwrap().is_empty());
}
