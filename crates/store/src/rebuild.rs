//! A store made again from the run folders alone (`oodlab store rebuild`): each experiment's
//! registration from the manifest written beside its runs when it was queued
//! (`runs/<experiment>/experiment.json`: the spec, and the runs in plan order with their
//! folders), then each run's last attempt replayed from its own `events.jsonl` through the same
//! recording the scheduler uses, and its rescores' events after it. What the results, comparisons
//! and reports read comes back as it was; runs that never started come back pending (the queue
//! itself comes back when their spec is run again).

use std::path::{Path, PathBuf};

use oodlab_protocol::{files, Event};
use serde::{Deserialize, Serialize};

use crate::{NewRun, Outcome, Store, StoreError};

/// The name of an experiment's manifest, in `runs/<experiment>/`.
pub const MANIFEST: &str = "experiment.json";

/// An experiment's registration, as [`Store::register`] takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub experiment: String,
    pub spec_path: String,
    pub spec_yaml: String,
    pub runs: Vec<NewRun>,
    /// The runs searches trained for their trials to start from (`on: {classes: N}`: the
    /// parents trained again without the held-out classes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_parents: Vec<NewRun>,
    /// The tuning stage's trial rungs with their runs, as queued (issue #33).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<TrialRungRecord>,
    /// The searches' choices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<crate::ChoiceRow>,
}

/// A trial rung in a manifest: its record and its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRungRecord {
    pub rung: crate::NewTrialRung,
    pub runs: Vec<NewRun>,
}

impl Manifest {
    /// The manifest in `folder`, if one is there and reads.
    pub fn read(folder: &Path) -> Option<Manifest> {
        serde_json::from_slice(&std::fs::read(folder.join(MANIFEST)).ok()?).ok()
    }

    /// Writes the manifest into `folder` (the experiment's runs folder) through a temporary file
    /// and a rename, so that a reader finds the previous one or this one.
    pub fn write(&self, folder: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(folder)?;
        let tmp = folder.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("a manifest serializes"))?;
        std::fs::rename(&tmp, folder.join(MANIFEST))
    }
}

/// What a rebuild found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rebuilt {
    pub experiments: Vec<String>,
    /// Run folders replayed: done, failed, and ended otherwise (interrupted).
    pub done: usize,
    pub failed: usize,
    pub interrupted: usize,
    /// Registered runs without a started attempt in their folder: pending.
    pub pending: usize,
    /// Folders of `runs/` that no manifest names, or whose events could not be read, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

impl Store {
    /// Fills this store — a new, empty one — from the run folders under `runs_root`.
    pub async fn rebuild_from(&self, runs_root: &Path) -> Result<Rebuilt, StoreError> {
        let mut out = Rebuilt::default();
        let mut manifests = Vec::new();
        let mut experiment_dirs: Vec<PathBuf> = match std::fs::read_dir(runs_root) {
            Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect(),
            Err(_) => Vec::new(),
        };
        experiment_dirs.sort();
        for dir in &experiment_dirs {
            let path = dir.join(MANIFEST);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => manifests.push(m),
                Err(why) => out.skipped.push((dir.clone(), format!("no readable {MANIFEST}: {why}"))),
            }
        }
        // Registered in the order they were queued is not known; a run shared by experiments
        // keeps the folder every manifest names for it, so the order changes nothing read.
        for m in &manifests {
            self.register(&m.experiment, &m.spec_path, &m.spec_yaml, &m.runs).await?;
            self.restore_tuning(&m.search_parents, &m.trials, &m.choices).await?;
            out.experiments.push(m.experiment.clone());
        }
        // Every run a manifest names: the experiments' own, the searches' parents, the trials'.
        let all = |m: &Manifest| {
            m.runs.iter().chain(&m.search_parents).chain(m.trials.iter().flat_map(|t| &t.runs)).cloned().collect::<Vec<NewRun>>()
        };
        let named: Vec<NewRun> = manifests.iter().flat_map(all).collect();
        let mut seen = std::collections::HashSet::new();
        for r in &named {
            if !seen.insert(r.id.clone()) {
                continue;
            }
            // A run shared by experiments trained in one of their folders: the one that holds
            // its events is its folder.
            let named: Vec<&str> = named.iter().filter(|o| o.id == r.id).map(|o| o.run_dir.as_str()).collect();
            let holds = |d: &&&str| Path::new(**d).join(files::EVENTS).exists();
            let folder = PathBuf::from(named.iter().find(holds).copied().unwrap_or(r.run_dir.as_str()));
            sqlx::query("UPDATE runs SET run_dir = ?2 WHERE id = ?1")
                .bind(&r.id)
                .bind(folder.display().to_string())
                .execute(&self.pool)
                .await?;
            match self.replay(&r.id, &folder).await {
                Ok(Some(Outcome::Done { .. })) => out.done += 1,
                Ok(Some(Outcome::Failed { .. } | Outcome::Stalled { .. })) => out.failed += 1,
                Ok(Some(Outcome::Interrupted { .. })) => out.interrupted += 1,
                Ok(None) => out.pending += 1,
                Err(why) => out.skipped.push((folder, why)),
            }
        }
        // The new store whole in its main file, not partly in the WAL: the one file to copy.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        Ok(out)
    }

    /// Replays run `run_id`'s last attempt from `folder`: `Ok(None)` when it never started.
    async fn replay(&self, run_id: &str, folder: &Path) -> Result<Option<Outcome>, String> {
        let events = read_events(&folder.join(files::EVENTS))?;
        let Some(started) = events.iter().position(|e| matches!(e, Event::Started { .. })) else { return Ok(None) };
        let host = match &events[started] {
            Event::Started { host, .. } => host.clone(),
            _ => unreachable!(),
        };
        let db = |e: StoreError| e.to_string();
        self.start_attempt(run_id, "rebuilt", &host, None).await.map_err(db)?;
        // What the scheduler records: all but progress and heartbeats.
        let recorded: Vec<(&str, &Event)> = events[started..]
            .iter()
            .filter(|e| !matches!(e, Event::Progress { .. } | Event::Heartbeat { .. }))
            .map(|e| (run_id, e))
            .collect();
        self.record_events(&recorded).await.map_err(db)?;
        let outcome = events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Finished { .. } => Some(Outcome::Done { exit_code: 0 }),
                Event::Failed { reason } => Some(Outcome::Failed { exit_code: None, reason: reason.clone(), stderr_tail: String::new() }),
                _ => None,
            })
            .unwrap_or_else(|| Outcome::Interrupted { reason: "its events end before the run did (store rebuilt from its folder)".into() });
        self.end_attempt(run_id, &outcome).await.map_err(db)?;
        // A rescore adds results only, as when it ran.
        let rescored = folder.join(files::RESCORE_EVENTS);
        if rescored.exists() {
            let added = read_events(&rescored)?;
            let results: Vec<(&str, &Event)> = added
                .iter()
                .filter(|e| matches!(e, Event::Metric { .. } | Event::OodMetric { .. } | Event::Artifact { .. }))
                .map(|e| (run_id, e))
                .collect();
            self.record_events(&results).await.map_err(db)?;
        }
        Ok(Some(outcome))
    }
}

/// The events of a worker's log. A line that is no event — cut short when a worker was killed
/// mid-write, or garbled — is left out, as the scheduler's tail leaves it when it reads the log.
fn read_events(path: &Path) -> Result<Vec<Event>, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    Ok(String::from_utf8_lossy(&text).lines().filter(|l| !l.trim().is_empty()).filter_map(|l| Event::parse_line(l).ok()).collect())
}
