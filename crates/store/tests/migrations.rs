//! Upgrading a store keeps what it holds: a store made before `run_metrics` became a WITHOUT ROWID
//! table (migration 20261129000001, which copies the table) keeps every metric, and the views that
//! read the table (`results`, `run_flags`) read the new one.

use std::borrow::Cow;

use oodlab_store::Store;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const REBUILD: i64 = 20261129000001;

#[tokio::test]
async fn metrics_survive_the_rebuild_of_their_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oodlab.db");
    let connect = || {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(true))
    };

    // The store as the oodlab before the rebuild left it: its migrations, then its rows.
    let pool = connect().await.unwrap();
    let mut before = sqlx::migrate!("../../migrations");
    before.migrations = Cow::Owned(before.migrations.iter().filter(|m| m.version < REBUILD).cloned().collect());
    before.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO experiments (name, spec_path, spec_yaml, created_at, updated_at) VALUES ('x', 'x.yaml', 'name: x', 't', 't')",
        "INSERT INTO runs (id, method, seed, split, parent_id, config, run_dir, status) VALUES ('base', 'ce', 0, 0, NULL, '{}', 'runs/base', 'done')",
        "INSERT INTO runs (id, method, seed, split, parent_id, config, run_dir, status) VALUES ('tuned', 'lmoe', 0, 0, 'base', '{}', 'runs/tuned', 'done')",
        "INSERT INTO experiment_runs (experiment, run_id, entry, position) VALUES ('x', 'base', 'baseline', 0), ('x', 'tuned', 'lmoe', 1)",
        "INSERT INTO run_metrics (run_id, name, value) VALUES ('base', 'id_acc', 0.94), ('tuned', 'id_acc', 0.88), ('tuned', 'auroc', 0.75)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    // This oodlab opens it: the pending migrations run.
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.runs_with_metric_above("lmoe", "auroc", 0.5).await.unwrap(), vec![("tuned".to_string(), 0.75)]);
    assert_eq!(store.runs_with_metric_above("lmoe", "id_acc", 0.0).await.unwrap(), vec![("tuned".to_string(), 0.88)]);
    // run_flags joins run_metrics twice (the fine-tune's and its parent's ID accuracy).
    let flags: Vec<(String, String)> = store.experiment_flags("x").await.unwrap().into_iter().map(|f| (f.run_id, f.detail)).collect();
    assert_eq!(
        flags,
        vec![("tuned".to_string(), "ID accuracy 88.0% is 6.0 points below its parent's 94.0% (eval.max_acc_drop 5)".to_string())]
    );
    store.close().await;

    let pool = connect().await.unwrap();
    let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'run_metrics'").fetch_one(&pool).await.unwrap();
    assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM run_metrics").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 3);
    let leftover: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'run_metrics_clustered'").fetch_one(&pool).await.unwrap();
    assert_eq!(leftover, 0);
}
