//! An experiment's runs exported to the tools researchers already read curves in (issue #37;
//! docs/python.md, "Export"): TensorBoard event files ([`tensorboard`]) and MLflow runs
//! ([`mlflow`]: a local file store, or a tracking server through its REST API). The caller (the
//! CLI) reads the store into [`RunRecord`]s; this crate only writes, and never prints.
//!
//! Both exports are idempotent: a run is found again by its oodlab id (a fixed event-file name;
//! an MLflow tag), and exporting twice creates nothing twice.

pub mod mlflow;
pub mod tensorboard;

use std::collections::BTreeMap;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The tracking server refused or could not be reached; the message names the request.
    #[error("{0}")]
    Server(String),
    /// Something already at the destination that this export would have to overwrite or misread.
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T> = std::result::Result<T, ExportError>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.into();
    move |source| ExportError::Io { path, source }
}

/// One epoch of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub epoch: i64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_acc: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

/// Scalars logged together: (ms since the Unix epoch, step, (name, value)s).
pub type Logged<'a> = (f64, i64, Vec<(&'a str, f64)>);

/// One run of an experiment, as the exports need it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub entry: String,
    pub method: String,
    pub seed: i64,
    pub split: i64,
    /// `done` or `failed` (the exports skip runs that have not ended).
    pub status: String,
    /// Milliseconds since the Unix epoch.
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// The run's settings flattened to dotted keys (`train.optimizer.lr`), and its place
    /// (`entry`, `seed`, `split`, `parent`).
    pub params: BTreeMap<String, String>,
    pub epochs: Vec<Epoch>,
    /// The final metrics: `id_acc`, and per OOD set and score `<set>/<score>/<metric>`.
    pub metrics: BTreeMap<String, f64>,
    /// Tags: the run folder, the checkpoint's path, the failure.
    pub tags: BTreeMap<String, String>,
    /// Files logged as artifacts (the run's config and event log, the report's figures).
    pub artifacts: Vec<PathBuf>,
}

impl RunRecord {
    /// The run's name where a tool shows one: `entry seed S split P`.
    pub fn name(&self) -> String {
        format!("{} seed {} split {}", self.entry, self.seed, self.split)
    }

    /// The step the final metrics are logged at: the last epoch (0 without any).
    pub fn last_step(&self) -> i64 {
        self.epochs.last().map_or(0, |e| e.epoch)
    }

    /// What both exports log, in time order: each epoch's scalars at the time it ended (the start
    /// plus the seconds of the epochs so far, in ms since the Unix epoch), then the final metrics
    /// at the run's end, at the last step. (ms, step, scalars).
    pub fn timeline(&self) -> Vec<Logged<'_>> {
        let mut t = self.started_ms.unwrap_or(0) as f64;
        let mut out = Vec::new();
        for e in &self.epochs {
            t += e.seconds * 1000.0;
            let mut values = vec![("train/loss", e.train_loss), ("train/accuracy", e.train_acc)];
            if let Some(v) = e.val_acc {
                values.push(("val/accuracy", v));
            }
            values.extend([("train/lr", e.lr), ("epoch/seconds", e.seconds)]);
            out.push((t, e.epoch, values));
        }
        if !self.metrics.is_empty() {
            let end = self.ended_ms.map_or(t, |ms| ms as f64);
            out.push((end, self.last_step(), self.metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect()));
        }
        out
    }
}

/// Flattens a JSON object into dotted keys and text values (lists and scalars as JSON text).
pub fn flatten(value: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_flatten_to_dotted_keys() {
        let v = serde_json::json!({"method": {"kind": "oe", "weight": 0.5}, "train": {"augment": {"hflip": true}, "milestones": [1, 2]}, "empty": {}});
        let f = flatten(&v);
        let got: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("empty", "{}"),
                ("method.kind", "oe"),
                ("method.weight", "0.5"),
                ("train.augment.hflip", "true"),
                ("train.milestones", "[1,2]")
            ]
        );
    }
}
