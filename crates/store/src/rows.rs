//! Row types read from and written to the store.

use serde::Serialize;

/// The lifecycle of a run in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Pending,
    Running,
    Done,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// A planned run, as registered before scheduling.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NewRun {
    pub id: String,
    pub entry: String,
    pub method: String,
    pub seed: i64,
    pub split: i64,
    pub parent_id: Option<String>,
    pub config_json: String,
    pub grid_json: String,
    pub run_dir: String,
}

/// One row of the `results` view.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ResultRow {
    pub run_id: String,
    pub entry: String,
    pub method: String,
    pub seed: i64,
    pub split: i64,
    pub id_dataset: Option<String>,
    pub score: String,
    pub ood_set: String,
    pub id_acc: Option<f64>,
    pub auroc: f64,
    pub fpr95: f64,
    pub aupr_in: f64,
    pub aupr_out: f64,
    /// MixOE's TNR@95; absent for results recorded before it was computed.
    pub tnr95: Option<f64>,
    pub n_id: i64,
    pub n_ood: i64,
}

/// A run of an experiment with its resolved config (JSON) and grid values (JSON).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ExperimentRun {
    pub run_id: String,
    pub entry: String,
    pub method: String,
    pub seed: i64,
    pub split: i64,
    pub status: RunStatus,
    pub config: String,
    pub grid: String,
}

/// One run of an experiment with its status: a row of the `run_status` view with the run's
/// place in the plan and its grid values. `oodlab status`, the report's grid and the dashboard's
/// runs pages all list runs as these.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StatusRow {
    /// The run's place in the experiment's plan.
    pub position: i64,
    pub run_id: String,
    pub entry: String,
    pub method: String,
    pub seed: i64,
    pub split: i64,
    pub parent_id: Option<String>,
    pub status: RunStatus,
    pub attempts: i64,
    pub exit_code: Option<i64>,
    pub failure: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub slot: Option<String>,
    pub device: Option<String>,
    /// This run's grid values, JSON text.
    pub grid: String,
}

/// The columns of a [`StatusRow`], from `experiment_runs er JOIN runs r`.
pub(crate) const STATUS_COLUMNS: &str = "er.position, r.id AS run_id, er.entry, r.method, r.seed, r.split, r.parent_id, r.status, \
     r.attempts, r.exit_code, r.failure, r.started_at, r.ended_at, r.slot, r.device, er.grid";

/// Details of one run, for `oodlab status RUN`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunDetail {
    pub id: String,
    pub method: String,
    pub seed: i64,
    pub split: i64,
    pub status: RunStatus,
    pub attempts: i64,
    pub exit_code: Option<i64>,
    pub failure: Option<String>,
    pub stderr_tail: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub host: Option<String>,
    pub slot: Option<String>,
    pub device: Option<String>,
    pub cuda_visible_devices: Option<String>,
    pub pid: Option<i64>,
    pub git_commit: Option<String>,
    pub run_dir: String,
}

/// One attempt of a run (`oodlab status --run`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub slot: Option<String>,
    pub host: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub status: String,
    pub failure: Option<String>,
    /// The finished epochs it went on after, from the run's mid-run checkpoint; None: from the
    /// start.
    pub resumed_epoch: Option<i64>,
    pub notes: Option<String>,
}

/// A warning about a finished run, from the `run_flags` view: `acc-drop` (collapsed against its
/// parent), `loss-rising` or `loss-nonfinite`, and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FlagRow {
    pub run_id: String,
    pub flag: String,
    pub detail: String,
}

/// One epoch of a run.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EpochRow {
    pub epoch: i64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_acc: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

/// How an attempt ended, for [`crate::Store::end_attempt`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Done {
        exit_code: i32,
    },
    Failed {
        exit_code: Option<i32>,
        reason: String,
        stderr_tail: String,
    },
    Interrupted {
        reason: String,
    },
    /// Killed by the scheduler because it stopped sending heartbeats or stopped working
    /// (`resources.stall_timeout`): the run is `failed` (and retried within its budget), the
    /// attempt `stalled`.
    Stalled {
        exit_code: Option<i32>,
        reason: String,
        stderr_tail: String,
    },
}

/// What [`Store::remove_experiment`](crate::Store::remove_experiment) removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedExperiment {
    /// The removed runs.
    pub runs: Vec<String>,
    /// Their folders, for the caller to delete.
    pub folders: Vec<String>,
    /// The experiment's runs kept because another experiment lists them.
    pub kept_shared: usize,
}
