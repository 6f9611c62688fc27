//! The comparison's input from the store: every finished run's value of one metric, labelled by
//! its row (method entry, method, or any spec field) and column (OOD set), with the rows in plan
//! order. `oodlab compare`, `oodlab report` and the dashboard all pivot this.

use std::collections::BTreeMap;

use oodlab_store::{RunStatus, Store, StoreError};
use thiserror::Error;

use crate::{CompareInput, Metric, Observation};

#[derive(Debug, Error)]
pub enum CompareError {
    /// A bad row field, split or baseline; the message says what to use instead.
    #[error("{0}")]
    Invalid(String),
    #[error("no experiment `{0}` in the store; `oodlab status` lists them")]
    NoExperiment(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a run's stored config is not JSON: {0}")]
    Config(#[from] serde_json::Error),
}

/// The fine-grained OOD set (held-out classes); every other set is coarse.
const NEAR_SET: &str = "heldout";

/// The value of a field path in a run's config: settings first (`train.optimizer.lr`), then the
/// top level (`seed`, `split`, `entry`).
fn field_value(config: &serde_json::Value, path: &str) -> Option<String> {
    let pointer = |prefix: &str| format!("{prefix}/{}", path.replace('.', "/"));
    let v = config.pointer(&pointer("/settings")).or_else(|| config.pointer(&pointer("")))?;
    Some(match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn row_label(rows: &str, entry: &str, method: &str, grid: &str, config: &serde_json::Value) -> String {
    match rows {
        "entry" => {
            let grid: BTreeMap<String, serde_json::Value> = serde_json::from_str(grid).unwrap_or_default();
            if grid.is_empty() {
                entry.to_string()
            } else {
                format!("{entry} [{}]", grid.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
            }
        }
        "method" => method.to_string(),
        // Runs without the field (a switch of another method) form the row `-`.
        field => field_value(config, field).unwrap_or_else(|| "-".to_string()),
    }
}

/// What to pivot: the metric of one score, rows by `rows`, one split or all, one method entry or
/// all, the baseline row. `rows: "score"` makes the scores and detectors the rows (`score` is
/// then not used), which needs one method entry: `entry`, or an experiment of one.
pub struct Options<'a> {
    pub metric: Metric,
    pub score: &'a str,
    pub rows: &'a str,
    pub entry: Option<&'a str>,
    pub split: Option<u64>,
    pub baseline: Option<String>,
    pub alpha: f64,
}

/// The observations of `o.metric` for experiment `name` from the store, with the rows in plan
/// order (planned and finished runs); an input error names a bad row field, split or baseline.
pub async fn compare_input(store: &Store, name: &str, o: &Options<'_>) -> Result<CompareInput, CompareError> {
    let metric = o.metric;
    let mut runs = store.experiment_runs(name).await?;
    if runs.is_empty() {
        return Err(CompareError::NoExperiment(name.to_string()));
    }
    let mut entries: Vec<&str> = Vec::new();
    for r in &runs {
        if !entries.contains(&r.entry.as_str()) {
            entries.push(&r.entry);
        }
    }
    if let Some(entry) = o.entry {
        if !entries.contains(&entry) {
            return Err(CompareError::Invalid(format!("--entry {entry}: no such method entry; entries are {}", entries.join(", "))));
        }
    } else if o.rows == "score" && entries.len() > 1 {
        return Err(CompareError::Invalid(format!(
            "--rows score compares the detectors of one method entry: pick it with --entry (one of {})",
            entries.join(", ")
        )));
    }
    runs.retain(|r| o.entry.is_none_or(|e| r.entry == e));
    let by_score = o.rows == "score";
    if let Some(split) = o.split {
        if !runs.iter().any(|r| r.split as u64 == split) {
            return Err(CompareError::Invalid(format!("--split {split}: the experiment has no runs of that split")));
        }
    }

    // Rows in plan order with their planned and finished runs.
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<(String, usize, usize)> = Vec::new();
    for r in runs.iter().filter(|r| o.split.is_none_or(|s| r.split as u64 == s)) {
        if by_score {
            labels.insert(r.run_id.clone(), String::new());
            continue;
        }
        let config: serde_json::Value = serde_json::from_str(&r.config)?;
        let label = row_label(o.rows, &r.entry, &r.method, &r.grid, &config);
        match order.iter_mut().find(|(l, _, _)| *l == label) {
            Some(row) => row.1 += 1,
            None => order.push((label.clone(), 1, 0)),
        }
        if r.status == RunStatus::Done {
            order.iter_mut().find(|(l, _, _)| *l == label).expect("just added").2 += 1;
        }
        labels.insert(r.run_id.clone(), label);
    }

    let results = if by_score { store.results(name).await? } else { store.results_of_score(name, o.score).await? };
    let results: Vec<_> = results.into_iter().filter(|r| labels.contains_key(&r.run_id)).collect();
    if by_score {
        // One row per score, the logit scores first as every run has them, then the detectors
        // by name; each row's runs are those of the entry, its finished ones those scored by it.
        let planned = labels.len();
        let mut scores: Vec<&str> = results.iter().map(|r| r.score.as_str()).collect();
        scores.sort_by_key(|s| (!["msp", "maxlogit", "energy"].contains(s), ["msp", "maxlogit", "energy"].iter().position(|l| l == s), *s));
        scores.dedup();
        for score in scores {
            let done: std::collections::HashSet<&str> = results.iter().filter(|r| r.score == score).map(|r| r.run_id.as_str()).collect();
            order.push((score.to_string(), planned, done.len()));
        }
    }

    if !matches!(o.rows, "entry" | "method" | "score") && order.iter().all(|(l, _, _)| l == "-") {
        return Err(CompareError::Invalid(format!(
            "--rows {}: no run has this field; use entry, method, score, or a settings path like train.optimizer.lr",
            o.rows
        )));
    }

    let datasets: std::collections::BTreeSet<Option<&String>> = results.iter().map(|r| r.id_dataset.as_ref()).collect();
    let mut observations = Vec::new();
    let mut seen_id_acc = std::collections::HashSet::new();
    for r in results.iter().filter(|r| (by_score || r.score == o.score) && o.split.is_none_or(|s| r.split as u64 == s)) {
        let key = (r.seed as u64, r.split as u64);
        let row = if by_score { r.score.clone() } else { labels[&r.run_id].clone() };
        let prefix = if datasets.len() > 1 { format!("{}/", r.id_dataset.as_deref().unwrap_or("?")) } else { String::new() };
        let value = match metric {
            Metric::Auroc => Some(r.auroc),
            Metric::Fpr95 => Some(r.fpr95),
            Metric::AuprIn => Some(r.aupr_in),
            Metric::AuprOut => Some(r.aupr_out),
            Metric::Tnr95 => r.tnr95,
            Metric::IdAcc => {
                // One value per run (and row), in one column named for the ID dataset's test set.
                if seen_id_acc.insert((r.run_id.clone(), row.clone())) {
                    if let Some(v) = r.id_acc {
                        let column = format!("{prefix}{} test", r.id_dataset.as_deref().unwrap_or("ID"));
                        observations.push(Observation { row: row.clone(), column, near: false, key, value: v });
                    }
                }
                None
            }
            // Read from the run metrics below.
            Metric::Path(_) => None,
        };
        if let Some(value) = value {
            observations.push(Observation { row, column: format!("{prefix}{}", r.ood_set), near: r.ood_set == NEAR_SET, key, value });
        }
    }
    if let Some((kind, stat)) = metric.path_parts() {
        // Path statistics are run metrics `path.<kind>.<set>.<score>.<stat>`; the set is the column.
        for (run_id, metric_name, value) in store.run_metrics_with_prefix(name, &format!("path.{kind}.")).await? {
            let Some(row) = labels.get(&run_id) else { continue };
            let rest = &metric_name[format!("path.{kind}.").len()..];
            let Some((set_score, s)) = rest.rsplit_once('.') else { continue };
            let Some((set, score)) = set_score.rsplit_once('.') else { continue };
            if s != stat || (!by_score && score != o.score) {
                continue;
            }
            let row = if by_score { score.to_string() } else { row.clone() };
            let Some(r) = runs.iter().find(|r| r.run_id == run_id) else { continue };
            if o.split.is_some_and(|sp| r.split as u64 != sp) {
                continue;
            }
            let key = (r.seed as u64, r.split as u64);
            observations.push(Observation { row, column: set.to_string(), near: set == NEAR_SET, key, value });
        }
    }
    if let Some(b) = &o.baseline {
        if !order.iter().any(|(l, _, _)| l == b) {
            let rows: Vec<&str> = order.iter().map(|(l, _, _)| l.as_str()).collect();
            return Err(CompareError::Invalid(format!("--baseline {b}: no such row; rows are {}", rows.join(", "))));
        }
    }
    let mut flagged = std::collections::BTreeSet::new();
    for f in store.experiment_flags(name).await? {
        if let (Some(row), Some(r)) = (labels.get(&f.run_id), runs.iter().find(|r| r.run_id == f.run_id)) {
            let key = (r.seed as u64, r.split as u64);
            if by_score {
                // A flagged run taints every score row it is in.
                for (score, _, _) in &order {
                    flagged.insert((score.clone(), key));
                }
            } else {
                flagged.insert((row.clone(), key));
            }
        }
    }
    // Rows of searched entries carry their budget (rows by entry: a row is one entry's).
    let mut budgets = BTreeMap::new();
    if o.rows == "entry" {
        let searched: BTreeMap<String, i64> = store.tuning_budgets(name).await?.into_iter().collect();
        for r in &runs {
            if let (Some(label), Some(b)) = (labels.get(&r.run_id), searched.get(&r.entry)) {
                budgets.insert(label.clone(), *b as u64);
            }
        }
    }
    Ok(CompareInput { metric, observations, runs: order, baseline: o.baseline.clone(), alpha: o.alpha, flagged, budgets })
}
