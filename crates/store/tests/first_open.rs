//! A fresh home is opened by several processes at once: `oodlab run` creating the store while an
//! `oodlab status` (or a second `oodlab run`) opens it. Every opener must succeed and the schema be
//! applied exactly once; before migrations were serialized, the loser of the race failed with
//! "table ... already exists" and a starting scheduler died.

use oodlab_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_and_readers_opening_a_fresh_store_at_once_all_succeed() {
    for round in 0..15 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oodlab.db");
        let mut tasks = Vec::new();
        for i in 0..6 {
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    Store::open(&path).await.map(Some)
                } else {
                    // A reader polls until the store exists, as `oodlab status` does in tests.
                    loop {
                        match Store::open_read_only(&path).await {
                            Ok(None) => tokio::task::yield_now().await,
                            other => break other,
                        }
                    }
                }
            }));
        }
        for task in tasks {
            let store = task.await.unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
            store.unwrap().close().await;
        }
        let url = format!("sqlite://{}?mode=ro", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let (applied, distinct): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(DISTINCT version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(applied, distinct);
        assert!(applied >= 5, "{applied}");
    }
}
