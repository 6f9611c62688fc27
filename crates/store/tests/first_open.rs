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

#[tokio::test]
async fn the_never_writing_reader_refuses_a_store_that_is_behind_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oodlab.db");
    Store::open(&path).await.unwrap().close().await;
    assert!(Store::open_never_writing(&path).await.unwrap().is_some(), "an up-to-date store opens");
    assert!(Store::open_never_writing(&dir.path().join("none.db")).await.unwrap().is_none());
    // As if made by an older oodlab: the latest migration not applied.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)").execute(&pool).await.unwrap();
    pool.close().await;
    let before = std::fs::read(&path).unwrap();
    let err = Store::open_never_writing(&path).await.err().expect("a store behind is refused");
    assert!(err.to_string().contains("older than this oodlab"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing written");
}
