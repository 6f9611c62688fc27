//! The store's own health: SQLite's integrity and foreign-key checks and the migrations' version
//! (`oodlab store check`), a consistent copy while a scheduler writes (`oodlab store backup`),
//! and telling a damaged file from other errors (every command then says so in one sentence).

use std::path::Path;

use crate::{Store, StoreError, MIGRATOR};

type R<T> = Result<T, StoreError>;

/// What SQLite says of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Integrity {
    /// `PRAGMA integrity_check`'s findings; empty when it says `ok`.
    pub problems: Vec<String>,
    /// Rows of `PRAGMA foreign_key_check`: (table, rowid, parent table).
    pub foreign_keys: Vec<(String, Option<i64>, String)>,
    /// The last migration applied, and the last this oodlab has.
    pub migration: (i64, i64),
}

/// A run as the store holds it: its id, folder and status.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunFolder {
    pub id: String,
    pub run_dir: String,
    pub status: String,
}

impl Store {
    /// SQLite's integrity and foreign-key checks and the migrations' version.
    pub async fn integrity(&self) -> R<Integrity> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&self.pool).await?;
        let problems = if rows == ["ok"] { Vec::new() } else { rows };
        let foreign_keys: Vec<(String, Option<i64>, String)> =
            sqlx::query_as("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check").fetch_all(&self.pool).await?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await.unwrap_or(None);
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        Ok(Integrity { problems, foreign_keys, migration: (applied.unwrap_or(0), latest) })
    }

    /// Every run with its folder and status.
    pub async fn run_folders(&self) -> R<Vec<RunFolder>> {
        Ok(sqlx::query_as("SELECT id, run_dir, status FROM runs ORDER BY id").fetch_all(&self.pool).await?)
    }

    /// A consistent copy of the store at `dest` (SQLite's `VACUUM INTO`: one read transaction, so
    /// a scheduler writing meanwhile neither waits nor shows half a commit in the copy); refuses
    /// an existing `dest`, which it would not overwrite.
    pub async fn backup(&self, dest: &Path) -> R<()> {
        if dest.exists() {
            return Err(StoreError::Invalid(format!("{} exists: a backup never overwrites a file; name a new one", dest.display())));
        }
        let Some(text) = dest.to_str() else {
            return Err(StoreError::Invalid(format!("{}: the backup's path must be valid UTF-8", dest.display())));
        };
        sqlx::query("VACUUM INTO ?1").bind(text).execute(&self.pool).await?;
        Ok(())
    }
}

/// Whether `e` is SQLite saying the file is damaged or not a database (SQLITE_CORRUPT and its
/// extended codes, SQLITE_NOTADB), as opposed to a busy store, a full disk or a bad query.
pub fn is_damaged(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|code| matches!(code & 0xff, 11 | 26)),
        _ => false,
    }
}

impl StoreError {
    /// Whether the store file itself is damaged ([`is_damaged`]).
    pub fn is_damaged(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Query(source) => is_damaged(source),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(source)) => is_damaged(source),
            _ => false,
        }
    }
}

/// Whether one error of a chain is SQLite saying the store file is damaged (a [`StoreError`] or
/// sqlx's own error), for callers that hold the chain, not the store's types.
pub fn says_damaged(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<StoreError>().is_some_and(StoreError::is_damaged) || e.downcast_ref::<sqlx::Error>().is_some_and(is_damaged)
}
