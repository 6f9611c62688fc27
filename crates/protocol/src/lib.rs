//! The worker ⇄ scheduler contract: the job file a worker reads ([`WorkerJob`]), the JSON-lines
//! [`Event`]s it writes, the environment variables it is given and the exit codes it returns.
//!
//! The worker never opens the database; everything it has to say travels as one [`Event`] per
//! line on stdout, so the scheduler stays the only writer of the store.
//!
//! ```
//! use oodlab_protocol::Event;
//! let line = Event::Progress { epoch: 1, step: 3, steps: 10 }.to_line();
//! assert_eq!(Event::parse_line(&line).unwrap(), Event::Progress { epoch: 1, step: 3, steps: 10 });
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod env;
pub mod exit_codes;

/// What a worker is asked to do, written by the scheduler as `run.json` in the run folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerJob {
    /// The run's identity, as planned.
    pub run_id: String,
    /// The resolved run configuration (the spec crate's `RunConfig`), kept as JSON so that this
    /// crate stays independent of the spec's types.
    pub config: serde_json::Value,
    /// Folder the worker writes its checkpoint and scores into.
    pub run_dir: PathBuf,
    /// Checkpoint to start from (a fine-tune's parent run), if any.
    pub init_checkpoint: Option<PathBuf>,
    /// The mid-run checkpoint of a run of the same training stopped earlier (`train.stop_after`,
    /// a tuning trial's rung) that this run goes on from when it has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_from: Option<PathBuf>,
    /// Set for a rescore (`oodlab rescore`): the post-hoc detectors to add to this finished run,
    /// from its saved features or its checkpoint, instead of training it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescore: Option<Vec<String>>,
    /// Seconds between two heartbeats (well under the grid's `resources.stall_timeout`);
    /// absent: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<f64>,
}

/// The heartbeat interval for a stall timeout: a quarter of it, at most 30 s, at least 0.2 s.
pub fn heartbeat_for(stall_timeout: f64) -> f64 {
    (stall_timeout / 4.0).clamp(0.2, 30.0)
}

/// The files of a run folder (`runs/<experiment>/<run-id>/`), named once for every crate that
/// writes or reads them (docs/store.md lists what each holds).
pub mod files {
    /// The trained weights (safetensors, PyTorch's names).
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// Per-sample logits, labels and scores of every evaluated set.
    pub const SCORES: &str = "scores.safetensors";
    /// The penultimate features the post-hoc detectors fit on and score.
    pub const FEATURES: &str = "features.safetensors";
    /// The logit PCA, score histograms and interpolation paths (`eval.logit_pca`, …).
    pub const ANALYSIS: &str = "analysis.safetensors";
    /// The mid-run checkpoint a run started again goes on from (kept after a run stopped early
    /// in its schedule, `train.stop_after`, for the later rung that goes on from it).
    pub const RESUME: &str = "resume.safetensors";
    /// A training job, its events and its stderr (`WorkerJob::files`).
    pub const JOB: &str = "run.json";
    pub const EVENTS: &str = "events.jsonl";
    pub const STDERR: &str = "stderr.log";
    /// The same for a rescore job, so that the training's stay as the run left them.
    pub const RESCORE_JOB: &str = "rescore.json";
    pub const RESCORE_EVENTS: &str = "rescore-events.jsonl";
    pub const RESCORE_STDERR: &str = "rescore-stderr.log";
}

/// The files of a job in its run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFiles {
    /// The job itself, which the worker reads.
    pub job: &'static str,
    /// Its events, one JSON line each, as the worker wrote them.
    pub events: &'static str,
    pub stderr: &'static str,
}

impl WorkerJob {
    /// The job's files: a rescore has its own, so that the training's job, events and stderr
    /// stay as the run left them.
    pub fn files(&self) -> JobFiles {
        if self.rescore.is_some() {
            JobFiles { job: files::RESCORE_JOB, events: files::RESCORE_EVENTS, stderr: files::RESCORE_STDERR }
        } else {
            JobFiles { job: files::JOB, events: files::EVENTS, stderr: files::STDERR }
        }
    }
}

/// One line of a worker's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The worker has read its job and is about to load data.
    Started {
        run_id: String,
        host: String,
        device: String,
        pid: u32,
        threads: usize,
        /// `CUDA_VISIBLE_DEVICES` as the worker saw it.
        cuda_visible_devices: Option<String>,
    },
    /// One finished training epoch.
    Epoch { epoch: u32, train_loss: f64, train_acc: f64, val_acc: Option<f64>, lr: f64, seconds: f64 },
    /// A step inside an epoch, for progress bars; never stored.
    Progress { epoch: u32, step: u32, steps: u32 },
    /// Sent every `heartbeat_seconds` of the job by a thread of its own while the
    /// worker lives: `work` counts the batches it has computed (training steps, evaluation
    /// batches), so that a worker that is alive but stuck is told from one that works. Never
    /// stored.
    Heartbeat { work: u64 },
    /// A scalar result of the run, such as `id_acc`.
    Metric { name: String, value: f64 },
    /// OOD detection metrics of one score on one OOD set.
    OodMetric {
        ood_set: String,
        score: String,
        auroc: f64,
        fpr95: f64,
        aupr_in: f64,
        aupr_out: f64,
        /// MixOE's TNR@95 (ID positive, nearest point to TPR 0.95); not 1 - FPR@95.
        #[serde(default)]
        tnr95: Option<f64>,
        n_id: u64,
        n_ood: u64,
    },
    /// This attempt goes on from the run's mid-run checkpoint, after `epoch` finished epochs
    /// (and `step` steps of the next, for a checkpoint written inside an epoch).
    Resumed {
        epoch: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u32>,
    },
    /// Something the user should know about the attempt, in one sentence (a mid-run checkpoint
    /// refused, for example); kept with the attempt and shown.
    Note { message: String },
    /// A file the run produced, relative to the run folder.
    Artifact { kind: String, path: String },
    /// The worker stops so that its run is submitted again and resumes (Slurm's warning of the
    /// time limit, a preemption); the attempt is not a failure. `saved`: it wrote a checkpoint of
    /// steps taken inside the epoch under way, so the next attempt starts further on even though
    /// no epoch ended.
    Requeue {
        reason: String,
        #[serde(default)]
        saved: bool,
    },
    /// The run completed; every metric has been sent before this line.
    Finished { seconds: f64 },
    /// The run failed; `reason` says why in one line.
    Failed { reason: String },
}

impl Event {
    /// The event as one JSON line, without the trailing newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }

    /// Parses one line written by a worker.
    pub fn parse_line(line: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_carry_their_tag() {
        let line = Event::Failed { reason: "boom".into() }.to_line();
        assert_eq!(line, r#"{"event":"failed","reason":"boom"}"#);
        assert!(Event::parse_line(r#"{"event":"nope"}"#).is_err());
    }
}
