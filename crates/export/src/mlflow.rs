//! MLflow: each finished run of an experiment as an MLflow run of the experiment of the same
//! name — its settings as params, each epoch's scalars as metric histories (step = epoch), the
//! final OOD metrics, tags (`oodlab.run_id`, the run folder, the checkpoint) and artifacts.
//!
//! Two destinations, by the tracking URI:
//! - `http://` or `https://`: a tracking server, through MLflow's REST API (`/api/2.0/mlflow/`;
//!   artifacts through the server's proxied artifact store, `mlflow-artifacts:`). An exported run
//!   is found again by its `oodlab.run_id` tag, and only the params and metric keys it lacks are
//!   logged, so a second export logs nothing twice (a run rescored since gains its new metrics).
//! - a directory (or `file://`): MLflow's file store layout (`<root>/<experiment id>/meta.yaml`,
//!   `<root>/<experiment id>/<run id>/{meta.yaml,params,metrics,tags,artifacts}`), written
//!   directly. The MLflow run id is derived from the experiment and oodlab run ids, so a second
//!   export rewrites the same files. (MLflow 3 keeps the file store in maintenance mode: it reads it
//!   with `MLFLOW_ALLOW_FILE_STORE=true`, and `mlflow migrate-filestore` moves it to a database.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::{io, ExportError, Result, RunRecord};

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    pub experiment_id: String,
    /// Runs created, and runs found from an earlier export.
    pub created: usize,
    pub existing: usize,
    /// Params and metric points logged (0 for a run exported before and unchanged).
    pub params: usize,
    pub points: usize,
    pub artifacts: usize,
}

/// The tag that names an MLflow run's oodlab run.
pub const RUN_TAG: &str = "oodlab.run_id";

/// Exports `runs` (those not `done` or `failed` are skipped) into the MLflow experiment named
/// `experiment` at `tracking_uri`.
pub fn export(tracking_uri: &str, experiment: &str, runs: &[RunRecord]) -> Result<Exported> {
    let runs: Vec<&RunRecord> = runs.iter().filter(|r| r.status == "done" || r.status == "failed").collect();
    if tracking_uri.starts_with("http://") || tracking_uri.starts_with("https://") {
        Server::new(tracking_uri).export(experiment, &runs)
    } else {
        let root = tracking_uri.strip_prefix("file://").unwrap_or(tracking_uri);
        FileStore::open(Path::new(root))?.export(experiment, &runs)
    }
}

/// The metric points of a run: (key, value, timestamp in ms, step).
fn points(run: &RunRecord) -> Vec<(String, f64, i64, i64)> {
    let mut out = Vec::new();
    for (ms, step, values) in run.timeline() {
        out.extend(values.into_iter().map(|(k, v)| (k.to_string(), v, ms as i64, step)));
    }
    out
}

/// MLflow's longest param value (`MAX_PARAM_VAL_LENGTH`): a longer one (a long list in the
/// settings) is cut there, marked, rather than the server refusing the whole batch.
const PARAM_VALUE: usize = 6000;

fn param_value(v: &str) -> String {
    if v.len() <= PARAM_VALUE {
        return v.to_string();
    }
    let mark = " … (cut)";
    let mut end = PARAM_VALUE - mark.len();
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{mark}", &v[..end])
}

fn tags(run: &RunRecord) -> BTreeMap<String, String> {
    let mut t = run.tags.clone();
    t.insert(RUN_TAG.into(), run.run_id.clone());
    t.insert("mlflow.runName".into(), run.name());
    t.insert("mlflow.user".into(), "oodlab".into());
    t.insert("mlflow.source.name".into(), "oodlab".into());
    t
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

// ---------------------------------------------------------------------------------------------
// The file store.

struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// Opens (making it, with MLflow's `Default` experiment 0, as MLflow does) the store at
    /// `root`.
    fn open(root: &Path) -> Result<FileStore> {
        let fresh = !root.exists();
        std::fs::create_dir_all(root.join(".trash")).map_err(io(root))?;
        let root = root.canonicalize().map_err(io(root))?;
        let store = FileStore { root };
        if fresh {
            store.write_experiment("0", "Default")?;
        }
        Ok(store)
    }

    fn uri(&self, rel: &str) -> String {
        format!("file://{}/{rel}", self.root.display())
    }

    /// The id of the experiment named `name`, if the store has one.
    fn find_experiment(&self, name: &str) -> Result<Option<String>> {
        let mut found = None;
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            let meta = entry.path().join("meta.yaml");
            let Ok(text) = std::fs::read_to_string(&meta) else { continue };
            if yaml_field(&text, "name").as_deref() == Some(name) {
                if yaml_field(&text, "lifecycle_stage").as_deref() == Some("deleted") {
                    return Err(ExportError::Conflict(format!(
                        "{}: the experiment `{name}` is deleted in this store; restore it (`mlflow experiments restore`) or remove it from {}",
                        meta.display(),
                        self.root.join(".trash").display()
                    )));
                }
                found = Some(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(found)
    }

    fn write_experiment(&self, id: &str, name: &str) -> Result<()> {
        let dir = self.root.join(id);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let now = now_ms();
        let meta = format!(
            "artifact_location: {}\ncreation_time: {now}\nexperiment_id: {}\nlast_update_time: {now}\nlifecycle_stage: active\nname: {}\n",
            quoted(&self.uri(id)),
            quoted(id),
            quoted(name)
        );
        write(&dir.join("meta.yaml"), meta.as_bytes())
    }

    fn export(&self, experiment: &str, runs: &[&RunRecord]) -> Result<Exported> {
        let id = match self.find_experiment(experiment)? {
            Some(id) => id,
            None => {
                // The next free number, as MLflow's own ids are numbers here.
                let mut next = 1u64;
                for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))?.flatten() {
                    if let Ok(n) = entry.file_name().to_string_lossy().parse::<u64>() {
                        next = next.max(n + 1);
                    }
                }
                let id = next.to_string();
                self.write_experiment(&id, experiment)?;
                id
            }
        };
        let mut done = Exported { experiment_id: id.clone(), ..Default::default() };
        for run in runs {
            let uuid = run_uuid(experiment, &run.run_id);
            let dir = self.root.join(&id).join(&uuid);
            if dir.join("meta.yaml").exists() {
                done.existing += 1;
            } else {
                done.created += 1;
            }
            for sub in ["params", "metrics", "tags", "artifacts"] {
                std::fs::create_dir_all(dir.join(sub)).map_err(io(&dir))?;
            }
            let status = if run.status == "done" { 3 } else { 4 };
            let meta = format!(
                "artifact_uri: {}\nend_time: {}\nentry_point_name: ''\nexperiment_id: {}\nlifecycle_stage: active\nrun_id: {uuid}\nrun_name: {}\nrun_uuid: {uuid}\nsource_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: {}\nstatus: {status}\ntags: []\nuser_id: oodlab\ndeleted_time: null\n",
                quoted(&self.uri(&format!("{id}/{uuid}/artifacts"))),
                run.ended_ms.map_or("null".into(), |v| v.to_string()),
                quoted(&id),
                quoted(&run.name()),
                run.started_ms.unwrap_or(0),
            );
            write(&dir.join("meta.yaml"), meta.as_bytes())?;
            for (k, v) in &run.params {
                write(&dir.join("params").join(k), param_value(v).as_bytes())?;
                done.params += 1;
            }
            for (k, v) in tags(run) {
                write(&dir.join("tags").join(k), v.as_bytes())?;
            }
            // A key's file holds its history, a point a line: timestamp, value, step.
            let mut histories: BTreeMap<String, String> = BTreeMap::new();
            for (k, v, t, step) in points(run) {
                histories.entry(k).or_default().push_str(&format!("{t} {} {step}\n", float(v)));
                done.points += 1;
            }
            for (k, lines) in histories {
                write(&dir.join("metrics").join(k), lines.as_bytes())?;
            }
            for a in &run.artifacts {
                let to = dir.join("artifacts").join(file_name(a));
                let bytes = std::fs::read(a).map_err(io(a))?;
                write(&to, &bytes)?;
                done.artifacts += 1;
            }
        }
        Ok(done)
    }
}

/// A value as MLflow writes it (Python's `repr` of a float: `nan`, `inf`, or the shortest
/// round-trip digits).
fn float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// 32 hex digits from the experiment and the oodlab run (FNV-1a, 128 bits): the same MLflow run
/// for the same oodlab run, export after export.
fn run_uuid(experiment: &str, run_id: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in experiment.bytes().chain([0u8]).chain(run_id.bytes()) {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    format!("{h:032x}")
}

/// A YAML double-quoted scalar (JSON's string syntax is one).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The value of a top-level `key: value` line of a meta.yaml this module or MLflow wrote.
fn yaml_field(text: &str, key: &str) -> Option<String> {
    let line = text.lines().find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    let v = line[key.len() + 1..].trim();
    if v.starts_with('"') {
        serde_json::from_str(v).ok()
    } else if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner.replace("''", "'"))
    } else {
        Some(v.to_string())
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, bytes).map_err(io(path))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------------------------
// A tracking server.

struct Server {
    base: String,
    agent: ureq::Agent,
}

/// An MLflow run found on the server: its id, artifact root, and the param and metric keys it
/// has.
struct Found {
    id: String,
    artifact_uri: String,
    params: BTreeSet<String>,
    metrics: BTreeSet<String>,
}

/// MLflow's limits on one `log-batch` request.
const BATCH_METRICS: usize = 1000;
const BATCH_PARAMS: usize = 100;

impl Server {
    fn new(uri: &str) -> Server {
        Server {
            base: uri.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(60)).build(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let req = self.agent.request(method, &url);
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => r.into_json().map_err(|e| ExportError::Server(format!("{method} {url}: reading the answer: {e}"))),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                Err(ExportError::Server(format!("{method} {url}: the server answered {code}: {}", text.trim())))
            }
            Err(e) => Err(ExportError::Server(format!("{method} {url}: {e} (is `mlflow server` running there?)"))),
        }
    }

    fn experiment_id(&self, name: &str) -> Result<String> {
        let url = format!("experiments/get-by-name?experiment_name={}", encode(name));
        match self.call("GET", &url, None) {
            Ok(v) => {
                let e = &v["experiment"];
                if e["lifecycle_stage"] == "deleted" {
                    return Err(ExportError::Conflict(format!(
                        "the experiment `{name}` is deleted on {}; restore it (`mlflow experiments restore`) first",
                        self.base
                    )));
                }
                Ok(e["experiment_id"].as_str().unwrap_or_default().to_string())
            }
            Err(ExportError::Server(m)) if m.contains("RESOURCE_DOES_NOT_EXIST") => {
                let v = self.call("POST", "experiments/create", Some(json!({"name": name})))?;
                Ok(v["experiment_id"].as_str().unwrap_or_default().to_string())
            }
            Err(e) => Err(e),
        }
    }

    /// The MLflow run exported from oodlab run `run_id` before, with its param and metric keys.
    fn find(&self, experiment_id: &str, run_id: &str) -> Result<Option<Found>> {
        let filter = format!("tags.`{RUN_TAG}` = '{run_id}'");
        let v = self.call("POST", "runs/search", Some(json!({"experiment_ids": [experiment_id], "filter": filter, "max_results": 2})))?;
        let Some(run) = v["runs"].as_array().and_then(|r| r.first()) else { return Ok(None) };
        let keys = |what: &str| -> BTreeSet<String> {
            run["data"][what].as_array().map_or(BTreeSet::new(), |a| a.iter().filter_map(|m| m["key"].as_str().map(String::from)).collect())
        };
        Ok(Some(Found {
            id: run["info"]["run_id"].as_str().unwrap_or_default().to_string(),
            artifact_uri: run["info"]["artifact_uri"].as_str().unwrap_or_default().to_string(),
            params: keys("params"),
            metrics: keys("metrics"),
        }))
    }

    fn export(&self, experiment: &str, runs: &[&RunRecord]) -> Result<Exported> {
        let id = self.experiment_id(experiment)?;
        let mut done = Exported { experiment_id: id.clone(), ..Default::default() };
        for run in runs {
            let Found { id: mlflow_id, artifact_uri, params: has_params, metrics: has_metrics } = match self.find(&id, &run.run_id)? {
                Some(found) => {
                    done.existing += 1;
                    found
                }
                None => {
                    let tags: Vec<Value> = tags(run).into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
                    let v = self.call(
                        "POST",
                        "runs/create",
                        Some(json!({"experiment_id": id, "start_time": run.started_ms.unwrap_or(0), "run_name": run.name(), "tags": tags})),
                    )?;
                    done.created += 1;
                    let info = &v["run"]["info"];
                    Found {
                        id: info["run_id"].as_str().unwrap_or_default().to_string(),
                        artifact_uri: info["artifact_uri"].as_str().unwrap_or_default().to_string(),
                        params: BTreeSet::new(),
                        metrics: BTreeSet::new(),
                    }
                }
            };
            let params: Vec<Value> = run
                .params
                .iter()
                .filter(|(k, _)| !has_params.contains(*k))
                .map(|(k, v)| json!({"key": k, "value": param_value(v)}))
                .collect();
            let metrics: Vec<Value> = points(run)
                .into_iter()
                .filter(|(k, ..)| !has_metrics.contains(k))
                .map(|(k, v, t, step)| json!({"key": k, "value": v, "timestamp": t, "step": step}))
                .collect();
            done.params += params.len();
            done.points += metrics.len();
            for chunk in params.chunks(BATCH_PARAMS) {
                self.call("POST", "runs/log-batch", Some(json!({"run_id": mlflow_id, "params": chunk})))?;
            }
            for chunk in metrics.chunks(BATCH_METRICS) {
                self.call("POST", "runs/log-batch", Some(json!({"run_id": mlflow_id, "metrics": chunk})))?;
            }
            let status = if run.status == "done" { "FINISHED" } else { "FAILED" };
            let mut update = json!({"run_id": mlflow_id, "status": status});
            if let Some(end) = run.ended_ms {
                update["end_time"] = json!(end);
            }
            self.call("POST", "runs/update", Some(update))?;
            done.artifacts += self.upload(&artifact_uri, &run.artifacts)?;
        }
        Ok(done)
    }

    /// Puts each file at the run's artifact root through the server's proxied artifact store
    /// (the same path again replaces the file: nothing twice). A run whose artifacts the server
    /// does not serve (`--no-serve-artifacts`, a remote store) gets none: returns 0.
    fn upload(&self, artifact_uri: &str, files: &[PathBuf]) -> Result<usize> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else { return Ok(0) };
        // `mlflow-artifacts:/<path>` or `mlflow-artifacts://host/<path>`.
        let rest = match rest.strip_prefix("//") {
            Some(r) => r.split_once('/').map_or("", |(_, p)| p),
            None => rest.trim_start_matches('/'),
        };
        for f in files {
            let bytes = std::fs::read(f).map_err(io(f))?;
            let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{rest}/{}", self.base, encode(&file_name(f)));
            self.agent.put(&url).send_bytes(&bytes).map_err(|e| ExportError::Server(format!("PUT {url}: {e}")))?;
        }
        Ok(files.len())
    }
}

/// Percent-encodes all but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_python_writes_them() {
        assert_eq!(
            (float(0.1), float(1.0), float(f64::NAN), float(-f64::INFINITY)),
            ("0.1".into(), "1.0".into(), "nan".into(), "-inf".into())
        );
    }

    #[test]
    fn run_ids_are_fixed_per_experiment_and_run() {
        let a = run_uuid("exp", "abc");
        assert_eq!(a.len(), 32);
        assert_eq!(a, run_uuid("exp", "abc"));
        assert_ne!(a, run_uuid("exp2", "abc"));
        assert_ne!(run_uuid("ab", "c"), run_uuid("a", "bc"));
    }

    #[test]
    fn yaml_fields_quoted_or_not() {
        let t = "artifact_location: \"file:///x\"\nname: 'it''s'\nlifecycle_stage: active\nnamed: no\n";
        assert_eq!(yaml_field(t, "name").as_deref(), Some("it's"));
        assert_eq!(yaml_field(t, "artifact_location").as_deref(), Some("file:///x"));
        assert_eq!(yaml_field(t, "lifecycle_stage").as_deref(), Some("active"));
        assert_eq!(yaml_field(t, "nothing"), None);
    }

    #[test]
    fn long_param_values_are_cut_at_mlflows_limit() {
        assert_eq!(param_value("short"), "short");
        let long = "é".repeat(4000); // 8,000 bytes
        let cut = param_value(&long);
        assert!(cut.len() <= PARAM_VALUE && cut.ends_with(" … (cut)") && cut.starts_with("éé"), "{}", cut.len());
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(encode("a b/c-é"), "a%20b%2Fc-%C3%A9");
    }
}
