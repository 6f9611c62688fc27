//! The JSON API: the same data as the pages, for scripts and notebooks.

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use oodlab_report::render::{Format, NumberStyle};
use oodlab_store::{RunQuery, RunSort, RunStatus};
use serde_json::{json, Value};

use crate::charts;
use crate::error::{ApiError, Error};
use crate::AppState;

/// Query-string pairs in order (repeated keys kept).
pub fn pairs(raw: &Option<String>) -> Result<Vec<(String, String)>, Error> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
        .map_err(|e| Error::bad_request(format!("bad query string: {e}")))
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn parse_int(pairs: &[(String, String)], key: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, Error> {
    match get(pairs, key) {
        None => Ok(default),
        Some(v) => {
            v.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                Error::bad_request(format!("`{key}={v}`: expected a whole number from {} to {}", range.start(), range.end()))
            })
        }
    }
}

/// The runs table's query: `status`, `failure` (part of the reason), `f.<config path>=value`,
/// `sort` (a column or a config path), `desc=1`, `limit`, `offset`.
pub fn run_query(pairs: &[(String, String)]) -> Result<RunQuery, Error> {
    let mut q = RunQuery::default();
    if let Some(s) = get(pairs, "status") {
        q.status = Some(match s {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "done" => RunStatus::Done,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            other => return Err(Error::bad_request(format!("`status={other}`: expected pending, running, done, failed or interrupted"))),
        });
    }
    q.failure = get(pairs, "failure").map(String::from);
    for (k, v) in pairs {
        if let Some(path) = k.strip_prefix("f.") {
            if !oodlab_store::is_field_path(path) {
                return Err(Error::bad_request(format!("`{k}`: `{path}` is not a config field path (like train.optimizer.lr)")));
            }
            if !v.is_empty() {
                q.fields.push((path.to_string(), v.clone()));
            }
        }
    }
    if let Some(sort) = get(pairs, "sort") {
        q.sort = if oodlab_store::RUN_SORT_COLUMNS.contains(&sort) {
            RunSort::Column(sort.to_string())
        } else if oodlab_store::is_field_path(sort) && sort.contains('.') {
            RunSort::Field(sort.to_string())
        } else {
            return Err(Error::bad_request(format!(
                "`sort={sort}`: expected one of {} or a config field path like train.optimizer.lr",
                oodlab_store::RUN_SORT_COLUMNS.join(", ")
            )));
        };
    }
    q.descending = matches!(get(pairs, "desc"), Some("1" | "true"));
    q.limit = parse_int(pairs, "limit", 100, 1..=1000)?;
    q.offset = parse_int(pairs, "offset", 0, 0..=i64::from(i32::MAX))?;
    Ok(q)
}

/// Every score a run can have: those computed from logits, then the post-hoc detectors.
pub fn score_names() -> Vec<&'static str> {
    oodlab_spec::Score::names().to_vec()
}

/// `score=` of a query (default msp), one of [`score_names`].
pub fn score_param(pairs: &[(String, String)]) -> Result<String, Error> {
    let score = get(pairs, "score").unwrap_or("msp").to_string();
    if !score_names().contains(&score.as_str()) {
        return Err(Error::bad_request(format!("`score={score}`: expected one of {}", score_names().join(", "))));
    }
    Ok(score)
}

/// What the comparison shows: metric, score, rows, method entry, split, baseline (as
/// `oodlab compare`).
pub struct CompareQuery {
    pub metric: oodlab_report::Metric,
    pub score: String,
    pub rows: String,
    pub entry: Option<String>,
    pub split: Option<u64>,
    pub baseline: Option<String>,
}

pub fn compare_query(pairs: &[(String, String)]) -> Result<CompareQuery, Error> {
    let metric_name = get(pairs, "metric").unwrap_or("auroc");
    let metric = oodlab_report::Metric::parse(metric_name).ok_or_else(|| {
        let all: Vec<&str> = oodlab_report::Metric::ALL.iter().map(|m| m.name()).collect();
        Error::bad_request(format!("`metric={metric_name}`: expected one of {}", all.join(", ")))
    })?;
    let score = score_param(pairs)?;
    let rows = get(pairs, "rows").unwrap_or("entry").to_string();
    if !matches!(rows.as_str(), "entry" | "method" | "score") && !oodlab_store::is_field_path(&rows) {
        return Err(Error::bad_request(format!("`rows={rows}`: expected entry, method, score or a config field path")));
    }
    let split = match get(pairs, "split") {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| Error::bad_request(format!("`split={s}`: expected a split index")))?),
    };
    let entry = get(pairs, "entry").filter(|e| !e.is_empty()).map(String::from);
    Ok(CompareQuery { metric, score, rows, entry, split, baseline: get(pairs, "baseline").map(String::from) })
}

/// The comparison table of an experiment.
pub async fn compare_table(state: &AppState, name: &str, q: &CompareQuery) -> Result<oodlab_report::CompareTable, Error> {
    let options = oodlab_report::from_store::Options {
        metric: q.metric,
        score: &q.score,
        rows: &q.rows,
        entry: q.entry.as_deref(),
        split: q.split,
        baseline: q.baseline.clone(),
        alpha: 0.05,
    };
    let input = oodlab_report::from_store::compare_input(state.store(), name, &options).await?;
    Ok(oodlab_report::compare(&input).with_rows(&q.rows))
}

/// The export formats of `oodlab compare --format`.
pub fn export_format(name: &str) -> Result<(Format, &'static str, &'static str), Error> {
    Ok(match name {
        "csv" => (Format::Csv, "text/csv; charset=utf-8", "csv"),
        "markdown" => (Format::Markdown, "text/markdown; charset=utf-8", "md"),
        "latex" => (Format::Latex, "application/x-latex; charset=utf-8", "tex"),
        "json" => (Format::Json, "application/json", "json"),
        "table" => (Format::Table, "text/plain; charset=utf-8", "txt"),
        other => return Err(Error::bad_request(format!("`format={other}`: expected csv, markdown, latex, json or table"))),
    })
}

pub async fn experiments(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "experiments": state.store().experiment_summaries().await? })))
}

pub async fn experiment(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let progress = state.store().progress(&name).await?.ok_or_else(|| Error::not_found(format!("no experiment `{name}`")))?;
    let dashboards: Vec<&str> = state.dashboards().iter().map(|d| d.name.as_str()).collect();
    Ok(Json(json!({ "name": name, "progress": progress, "dashboards": dashboards })))
}

pub async fn runs(State(state): State<AppState>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let q = run_query(&pairs(&raw)?)?;
    if !state.store().has_experiment(&name).await? {
        return Err(Error::not_found(format!("no experiment `{name}`")).into());
    }
    let (total, runs) = state.store().runs_page(&name, &q).await?;
    Ok(Json(json!({ "total": total, "offset": q.offset, "limit": q.limit, "runs": runs })))
}

pub async fn compare(State(state): State<AppState>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let pairs = pairs(&raw)?;
    let q = compare_query(&pairs)?;
    let table = compare_table(&state, &name, &q).await?;
    match get(&pairs, "format") {
        None => Ok(Json(serde_json::to_value(&table).map_err(|e| Error::internal(&e))?).into_response()),
        Some(f) => {
            let (format, mime, _) = export_format(f)?;
            let text = oodlab_report::render::table(&table, format, NumberStyle::default());
            Ok(([(header::CONTENT_TYPE, mime)], text).into_response())
        }
    }
}

pub async fn dashboards(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "dashboards": state.dashboards() }))
}

pub async fn panel(
    State(state): State<AppState>,
    Path((name, dashboard, index)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let d =
        state.dashboards().iter().find(|d| d.name == dashboard).ok_or_else(|| Error::not_found(format!("no dashboard `{dashboard}`")))?;
    let p = index.parse::<usize>().ok().and_then(|i| d.panels.get(i)).ok_or_else(|| {
        Error::not_found(format!("dashboard `{dashboard}` has no panel `{index}` (0 to {})", d.panels.len().saturating_sub(1)))
    })?;
    if !state.store().has_experiment(&name).await? {
        return Err(Error::not_found(format!("no experiment `{name}`")).into());
    }
    let out = charts::panel(&state, &name, p).await?;
    Ok(Json(json!({ "title": p.title, "output": out })))
}

pub async fn run(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    let detail = store.run_detail(&id).await?.ok_or_else(|| Error::not_found(format!("no run `{id}`")))?;
    let (config, experiments) = store.run_config(&id).await?.unwrap_or_default();
    let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
    let epochs = store.epochs(&id).await?;
    let flags = store.run_flags(&id).await?;
    Ok(Json(json!({ "run": detail, "config": config, "experiments": experiments, "epochs": epochs, "flags": flags })))
}

pub async fn curves(State(state): State<AppState>, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let score = score_param(&pairs(&raw)?)?;
    if state.store().run_detail(&id).await?.is_none() {
        return Err(Error::not_found(format!("no run `{id}`")).into());
    }
    let charts: Vec<Value> =
        charts::run_charts(&state, &id, &score).await?.into_iter().map(|(kind, c)| json!({ "kind": kind, "chart": c })).collect();
    Ok(Json(json!({ "run_id": id, "score": score, "charts": charts })))
}
