//! All SQL of oodlab: the SQLite store behind sqlx, migrations from the repo's `migrations/`,
//! one small async function per query. The scheduler is its only writer; readers open it
//! read-only with [`Store::open_read_only`].
//!
//! ```no_run
//! # async fn f() -> Result<(), oodlab_store::StoreError> {
//! let store = oodlab_store::Store::open(".oodlab/oodlab.db".as_ref()).await?;
//! for row in store.results("quickstart").await? {
//!     println!("{} {} {} auroc={:.3}", row.run_id, row.score, row.ood_set, row.auroc);
//! }
//! # Ok(()) }
//! ```

mod queries;
mod queue;
mod rows;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

pub use queue::{GridRow, NewGrid, QueueRow, QueuedRun, RunningRow, SchedulerRow, SlurmTaskRow};
pub use rows::*;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

impl Store {
    /// Opens (creating if missing) the store for writing and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable across process crashes; only a power loss can drop the
            // last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    /// Opens an existing store for reading; `None` when there is no store yet. A store made by
    /// an older oodlab gets this version's migrations first (the one time a reader writes); an
    /// up-to-date one is never opened for writing, so readers never contend with the scheduler for
    /// SQLite's write lock.
    pub async fn open_read_only(path: &Path) -> Result<Option<Store>, StoreError> {
        let Some(store) = Store::open_reader(path).await? else { return Ok(None) };
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(&store.pool).await.unwrap_or(None);
        if applied.unwrap_or(0) >= latest {
            return Ok(Some(store));
        }
        store.close().await;
        Store::open(path).await?.close().await;
        Store::open_reader(path).await
    }

    async fn open_reader(path: &Path) -> Result<Option<Store>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?
            .read_only(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        Ok(Some(Store { pool }))
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// Now, as stored: RFC 3339 in UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
