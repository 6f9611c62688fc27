//! Read-only queries for browsing the store (the dashboard): pages of an experiment's runs with
//! filters and sorting, progress counts, and rows of the documented views as JSON. Every value
//! that comes from a request is bound as a parameter; the only names placed in SQL text are
//! checked against the documented views and their columns, or against a fixed list.

use serde::Serialize;
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::rows::{RunStatus, StatusRow};
use crate::{Store, StoreError};

type R<T> = Result<T, StoreError>;

/// The views of docs/store.md, the stable interface that dashboards may read.
pub const DOCUMENTED_VIEWS: &[&str] = &["results", "results_long", "seed_stats", "method_stats", "run_status", "epoch_curves", "run_flags"];

/// Columns of the runs table a page can be sorted by.
pub const RUN_SORT_COLUMNS: &[&str] =
    &["position", "run_id", "entry", "method", "seed", "split", "status", "attempts", "started_at", "ended_at", "failure"];

/// A config field path as `oodlab compare --rows` takes it: `train.optimizer.lr`, `data.splits[0]`.
pub fn is_field_path(path: &str) -> bool {
    let ident = |s: &str| {
        let s = s.split('[').next().unwrap_or("");
        let rest = &s.chars().skip(1).collect::<String>();
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let indices_ok = |seg: &str| {
        seg.split('[').skip(1).all(|i| i.strip_suffix(']').is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
    };
    !path.is_empty() && path.len() <= 200 && path.split('.').all(|seg| ident(seg) && indices_ok(seg))
}

/// How a page of runs is sorted.
#[derive(Debug, Clone, PartialEq)]
pub enum RunSort {
    /// One of [`RUN_SORT_COLUMNS`].
    Column(String),
    /// A config field path (see [`is_field_path`]).
    Field(String),
}

/// Filters and order of a page of an experiment's runs.
#[derive(Debug, Clone)]
pub struct RunQuery {
    pub status: Option<RunStatus>,
    /// Config field path = value (as text: `0.1`, `lmoe`, `true` is `1`), all of them.
    pub fields: Vec<(String, String)>,
    /// Part of the failure reason.
    pub failure: Option<String>,
    pub sort: RunSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

impl Default for RunQuery {
    fn default() -> Self {
        RunQuery {
            status: None,
            fields: Vec::new(),
            failure: None,
            sort: RunSort::Column("position".into()),
            descending: false,
            limit: 100,
            offset: 0,
        }
    }
}

/// Runs of an experiment per status, and when any of them last changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Progress {
    pub total: i64,
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub interrupted: i64,
    /// The latest start or end time among its runs; a cheap "did anything change" for pollers.
    pub last_change: Option<String>,
}

/// One experiment with its progress.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSummary {
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
    pub progress: Progress,
    /// Its finished runs the store flags (the `run_flags` view).
    pub flagged: i64,
    /// The entry with the highest mean MSP AUROC over its finished runs and OOD sets, with that
    /// mean; `None` before any run has finished.
    pub best: Option<BestEntry>,
}

/// An experiment's best entry by mean MSP AUROC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestEntry {
    pub entry: String,
    pub auroc: f64,
    /// Its (run, OOD set) results averaged.
    pub n: i64,
}

/// `json_extract` of a field path: the run's settings first, then its top level (seed, split).
const FIELD_SQL: &str = "COALESCE(json_extract(r.config, '$.settings.' || ?), json_extract(r.config, '$.' || ?))";

impl Store {
    /// Every experiment with its progress, by name.
    pub async fn experiment_summaries(&self) -> R<Vec<ExperimentSummary>> {
        let experiments: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, created_at, updated_at FROM experiments ORDER BY name").fetch_all(&self.pool).await?;
        let counts: Vec<(String, RunStatus, i64, Option<String>)> = sqlx::query_as(
            "SELECT er.experiment, r.status, count(*), max(max(coalesce(r.ended_at, ''), coalesce(r.started_at, '')))
             FROM experiment_runs er JOIN runs r ON r.id = er.run_id GROUP BY er.experiment, r.status",
        )
        .fetch_all(&self.pool)
        .await?;
        let flagged: Vec<(String, i64)> =
            sqlx::query_as("SELECT experiment, count(DISTINCT run_id) FROM run_flags GROUP BY experiment").fetch_all(&self.pool).await?;
        // Per experiment, its entries by mean MSP AUROC, best first (ties by name).
        let entries: Vec<(String, String, f64, i64)> = sqlx::query_as(
            "SELECT experiment, entry, avg(auroc), count(*) FROM results WHERE score = 'msp'
             GROUP BY experiment, entry ORDER BY experiment, avg(auroc) DESC, entry",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(experiments
            .into_iter()
            .map(|(name, created_at, updated_at)| {
                let mut progress = Progress::default();
                for (_, status, n, last) in counts.iter().filter(|c| c.0 == name) {
                    progress.add(*status, *n, last.clone());
                }
                let flagged = flagged.iter().find(|f| f.0 == name).map_or(0, |f| f.1);
                let best = entries.iter().find(|e| e.0 == name).map(|(_, entry, auroc, n)| BestEntry {
                    entry: entry.clone(),
                    auroc: *auroc,
                    n: *n,
                });
                ExperimentSummary { name, created_at, updated_at, progress, flagged, best }
            })
            .collect())
    }

    /// Whether the store has an experiment of this name.
    pub async fn has_experiment(&self, experiment: &str) -> R<bool> {
        let known: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM experiments WHERE name = ?1").bind(experiment).fetch_optional(&self.pool).await?;
        Ok(known.is_some())
    }

    /// An experiment's progress; `None` when there is no such experiment.
    pub async fn progress(&self, experiment: &str) -> R<Option<Progress>> {
        if !self.has_experiment(experiment).await? {
            return Ok(None);
        }
        let counts: Vec<(RunStatus, i64, Option<String>)> = sqlx::query_as(
            "SELECT r.status, count(*), max(max(coalesce(r.ended_at, ''), coalesce(r.started_at, '')))
             FROM experiment_runs er JOIN runs r ON r.id = er.run_id WHERE er.experiment = ?1 GROUP BY r.status",
        )
        .bind(experiment)
        .fetch_all(&self.pool)
        .await?;
        let mut progress = Progress::default();
        for (status, n, last) in counts {
            progress.add(status, n, last);
        }
        Ok(Some(progress))
    }

    /// A page of an experiment's runs and how many runs match the filters. Field paths must pass
    /// [`is_field_path`] and a `Column` sort must be one of [`RUN_SORT_COLUMNS`] (else `Invalid`).
    pub async fn runs_page(&self, experiment: &str, q: &RunQuery) -> R<(i64, Vec<StatusRow>)> {
        let mut filter = String::from("er.experiment = ?");
        let mut binds: Vec<String> = vec![experiment.to_string()];
        if let Some(s) = q.status {
            filter.push_str(" AND r.status = ?");
            binds.push(s.as_str().to_string());
        }
        for (path, value) in &q.fields {
            if !is_field_path(path) {
                return Err(StoreError::Invalid(format!("`{path}` is not a config field path (like train.optimizer.lr)")));
            }
            filter.push_str(&format!(" AND CAST({FIELD_SQL} AS TEXT) = ?"));
            binds.extend([path.clone(), path.clone(), value.clone()]);
        }
        if let Some(f) = &q.failure {
            filter.push_str(" AND instr(coalesce(r.failure, ''), ?) > 0");
            binds.push(f.clone());
        }
        let direction = if q.descending { "DESC" } else { "ASC" };
        let order = match &q.sort {
            RunSort::Column(c) if RUN_SORT_COLUMNS.contains(&c.as_str()) => {
                let column = match c.as_str() {
                    "position" | "entry" => format!("er.{c}"),
                    "run_id" => "r.id".to_string(),
                    other => format!("r.{other}"),
                };
                format!("{column} {direction}, er.position")
            }
            RunSort::Column(c) => {
                return Err(StoreError::Invalid(format!(
                    "cannot sort by `{c}`; sort by one of {} or a config field",
                    RUN_SORT_COLUMNS.join(", ")
                )))
            }
            RunSort::Field(path) if is_field_path(path) => {
                binds.extend([path.clone(), path.clone()]);
                format!("{FIELD_SQL} {direction}, er.position")
            }
            RunSort::Field(path) => {
                return Err(StoreError::Invalid(format!("`{path}` is not a config field path (like train.optimizer.lr)")))
            }
        };
        let from = format!("FROM experiment_runs er JOIN runs r ON r.id = er.run_id WHERE {filter}");
        let filter_binds = binds.len() - if matches!(q.sort, RunSort::Field(_)) { 2 } else { 0 };
        let count_sql = format!("SELECT count(*) {from}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for b in &binds[..filter_binds] {
            count = count.bind(b);
        }
        let total = count.fetch_one(&self.pool).await?;
        let sql = format!("SELECT {} {from} ORDER BY {order} LIMIT ? OFFSET ?", crate::rows::STATUS_COLUMNS);
        let mut page = sqlx::query_as::<_, StatusRow>(&sql);
        for b in &binds {
            page = page.bind(b);
        }
        let rows = page.bind(q.limit.clamp(0, 10_000)).bind(q.offset.max(0)).fetch_all(&self.pool).await?;
        Ok((total, rows))
    }

    /// A run's resolved config (JSON text) and the experiments that plan it.
    pub async fn run_config(&self, run_id: &str) -> R<Option<(String, Vec<String>)>> {
        let Some(config): Option<String> =
            sqlx::query_scalar("SELECT config FROM runs WHERE id = ?1").bind(run_id).fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        let experiments = sqlx::query_scalar("SELECT experiment FROM experiment_runs WHERE run_id = ?1 ORDER BY experiment")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(Some((config, experiments)))
    }

    /// The columns of a documented view, in order.
    pub async fn view_columns(&self, view: &str) -> R<Vec<String>> {
        if !DOCUMENTED_VIEWS.contains(&view) {
            return Err(StoreError::Invalid(format!("`{view}` is not a documented view; use one of {}", DOCUMENTED_VIEWS.join(", "))));
        }
        Ok(sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) ORDER BY cid").bind(view).fetch_all(&self.pool).await?)
    }

    /// Rows of a documented view for one experiment, as JSON objects: `filters` are column =
    /// value (bound as a number, text or NULL), `order` a list of (column, descending). Names are
    /// checked against the view.
    pub async fn view_rows(
        &self,
        view: &str,
        experiment: &str,
        filters: &[(String, serde_json::Value)],
        order: &[(String, bool)],
        limit: i64,
    ) -> R<Vec<serde_json::Map<String, serde_json::Value>>> {
        let columns = self.view_columns(view).await?;
        let check = |c: &String| {
            if columns.contains(c) {
                Ok(())
            } else {
                Err(StoreError::Invalid(format!("view `{view}` has no column `{c}`; its columns are {}", columns.join(", "))))
            }
        };
        let mut sql = format!("SELECT * FROM {view} WHERE experiment = ?");
        for (c, _) in filters {
            check(c)?;
            sql.push_str(&format!(" AND {c} = ?"));
        }
        if !order.is_empty() {
            let mut terms = Vec::new();
            for (c, desc) in order {
                check(c)?;
                terms.push(format!("{c} {}", if *desc { "DESC" } else { "ASC" }));
            }
            sql.push_str(&format!(" ORDER BY {}", terms.join(", ")));
        }
        sql.push_str(" LIMIT ?");
        let mut query = sqlx::query(&sql).bind(experiment);
        for (_, v) in filters {
            query = match v {
                serde_json::Value::Number(n) if n.is_i64() => query.bind(n.as_i64()),
                serde_json::Value::Number(n) => query.bind(n.as_f64()),
                serde_json::Value::Bool(b) => query.bind(*b as i64),
                serde_json::Value::String(t) => query.bind(t.clone()),
                serde_json::Value::Null => query.bind(None::<String>),
                other => query.bind(other.to_string()),
            };
        }
        let rows = query.bind(limit.clamp(0, 100_000)).fetch_all(&self.pool).await?;
        rows.iter().map(row_json).collect()
    }

    /// Rows of a read-only query over the store (a dashboard file's `query`), as JSON objects;
    /// `:experiment` in the text is bound to `experiment`. The caller opened the store read-only,
    /// so a query that tries to write fails.
    pub async fn query_rows(&self, sql: &str, experiment: &str, limit: i64) -> R<Vec<serde_json::Map<String, serde_json::Value>>> {
        // sqlx binds by position: the named parameter becomes the first one.
        let wrapped = format!("SELECT * FROM ({}) LIMIT {}", sql.replace(":experiment", "?1"), limit.clamp(0, 100_000));
        let mut query = sqlx::query(&wrapped).persistent(false);
        if sql.contains(":experiment") {
            query = query.bind(experiment);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(row_json).collect()
    }
}

impl Progress {
    fn add(&mut self, status: RunStatus, n: i64, last: Option<String>) {
        self.total += n;
        match status {
            RunStatus::Pending => self.pending += n,
            RunStatus::Running => self.running += n,
            RunStatus::Done => self.done += n,
            RunStatus::Failed => self.failed += n,
            RunStatus::Interrupted => self.interrupted += n,
        }
        let last = last.filter(|l| !l.is_empty());
        if last > self.last_change {
            self.last_change = last;
        }
    }
}

/// A row as a JSON object, by SQLite's storage class of each value.
fn row_json(row: &sqlx::sqlite::SqliteRow) -> R<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            serde_json::Value::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" => row.try_get::<i64, _>(i)?.into(),
                "REAL" => serde_json::Number::from_f64(row.try_get::<f64, _>(i)?).map_or(serde_json::Value::Null, Into::into),
                "TEXT" => row.try_get::<String, _>(i)?.into(),
                _ => serde_json::Value::Null,
            }
        };
        out.insert(column.name().to_string(), value);
    }
    Ok(out)
}
