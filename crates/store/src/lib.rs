//! All SQL of oodlab: the SQLite store behind sqlx, migrations from the repo's `migrations/`,
//! one small async function per query. The scheduler (or a command holding the home lock in its
//! place: a request applied when no scheduler runs, `oodlab rm`) is its only writer; readers open it
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

mod audits;
mod browse;
mod maintenance;
mod queries;
mod queue;
mod rebuild;
mod rows;
mod tuning;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

pub use audits::AuditRow;
pub use browse::{is_field_path, BestEntry, ExperimentSummary, Progress, RunQuery, RunSort, DOCUMENTED_VIEWS, RUN_SORT_COLUMNS};
pub use maintenance::{is_damaged, says_damaged, Integrity, RunFolder};
pub use queue::{GridRow, NewGrid, QueueRow, QueuedRun, QueuedRunTime, RunningRow, SchedulerRow, SlurmTaskRow};
pub use rebuild::{Manifest, Rebuilt, TrialRungRecord, MANIFEST};
pub use rows::*;
pub use tuning::{ChoiceRow, NewTrialRung, TrialRunRow, TuningRung};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot lock {path} to open the store: {source}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A request the store refuses before it reaches SQL (an unknown view, column or field path).
    #[error("{0}")]
    Invalid(String),
    /// A reader that must not write found a store made by an older oodlab.
    #[error("the store {path} is older than this oodlab; run `oodlab status --home <home>` once to upgrade it")]
    Behind { path: String },
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
    ///
    /// Openers of one store take turns (see [`OpenLock`]): sqlx checks which migrations are applied
    /// and then applies the rest in separate transactions, so two processes opening a fresh store at
    /// once (`oodlab run` while `oodlab status` polls) would both apply the first migration and one
    /// of them would fail.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let _turn = OpenLock::acquire(path).await?;
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

    /// Opens an existing store for reading and never writes it, not even to migrate: a store
    /// made by an older oodlab is an error ([`StoreError::Behind`]). For the dashboard server.
    pub async fn open_never_writing(path: &Path) -> Result<Option<Store>, StoreError> {
        let Some(store) = Store::open_reader(path).await? else { return Ok(None) };
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(&store.pool).await.unwrap_or(None);
        if applied.unwrap_or(0) < latest {
            store.close().await;
            return Err(StoreError::Behind { path: path.display().to_string() });
        }
        Ok(Some(store))
    }

    /// Opens an existing store for reading as it is — never migrated, whatever its version — to
    /// inspect or copy it (`oodlab store check`, `oodlab store backup`); `None` when there is none.
    pub async fn open_as_is(path: &Path) -> Result<Option<Store>, StoreError> {
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
            // Readers fetch whole tables (10,000 runs × their results for a comparison): a deep row
            // buffer lets SQLite's worker thread run ahead instead of waking the reader per row.
            .row_buffer_size(4096)
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

/// An exclusive `flock` on `<store>.lock`, held while a writer opens and migrates the store. A
/// separate file rather than the database itself: on network filesystems `flock` is emulated with
/// the same POSIX locks SQLite takes on the database. The kernel drops it when the holder dies.
struct OpenLock {
    _lock: Flock<std::fs::File>,
}

impl OpenLock {
    async fn acquire(store: &Path) -> Result<OpenLock, StoreError> {
        let path = format!("{}.lock", store.display());
        let io = |source| StoreError::Lock { path: path.clone(), source };
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        // Polled rather than blocking: the holder may be another task of this runtime.
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(OpenLock { _lock: lock }),
                Err((back, Errno::EWOULDBLOCK)) => {
                    file = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((_, errno)) => return Err(io(errno.into())),
            }
        }
    }
}

/// Now, as stored: RFC 3339 in UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Milliseconds since the Unix epoch of a time as stored (RFC 3339); `None` if it is not one.
pub fn millis(stamp: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(stamp).ok().map(|t| t.timestamp_millis())
}

/// Now in UTC for a file's name, sorting in time order: `20261207T124001Z`.
pub fn file_stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}
