//! `resources` — where and how runs execute: slots, retries, stalls, Slurm (docs/spec.md); never
//! part of a run's identity.

use serde::{Deserialize, Serialize};

/// Where and how runs execute; never part of a run's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesSpec {
    /// Concurrent CPU runs; `--jobs` overrides. Default: cores / threads_per_job.
    pub jobs: Option<usize>,
    /// CPU threads each run may use.
    pub threads_per_job: usize,
    /// `auto` (discover with nvidia-smi), `none`, or a list of GPU indices or UUIDs.
    pub gpus: GpuSelection,
    /// Runs per GPU at once (packing); 1 gives each run a GPU of its own.
    pub runs_per_gpu: usize,
    /// Extra attempts for a failed run.
    pub retries: u32,
    /// Seconds a worker gets to stop after SIGTERM before it is killed.
    pub grace_seconds: f64,
    /// Seconds without a heartbeat from a worker, or without work done, after which it is
    /// killed, its attempt recorded `stalled` and the run retried (from its mid-run checkpoint)
    /// within `retries`.
    pub stall_timeout: f64,
    /// Seconds between a run's failure and its next attempt, doubled after each further failure
    /// (at most 600): a passing fault does not spend every retry at once.
    pub retry_delay: f64,
    /// `local` (worker processes on this machine) or `slurm` (job arrays); `--backend` overrides.
    pub backend: Backend,
    /// How runs are submitted under `backend: slurm`.
    pub slurm: SlurmSpec,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        ResourcesSpec {
            jobs: None,
            threads_per_job: 1,
            gpus: GpuSelection::default(),
            runs_per_gpu: 1,
            retries: 0,
            grace_seconds: 10.0,
            stall_timeout: 600.0,
            retry_delay: 10.0,
            backend: Backend::Local,
            slurm: SlurmSpec::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Local,
    Slurm,
}

/// sbatch settings of the Slurm backend (docs/slurm.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSpec {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Time limit per run, as sbatch's `--time` (`02:00:00`).
    pub time: Option<String>,
    /// GPUs per run (`--gpus-per-task`).
    pub gpus: Option<u32>,
    /// Memory per run, as sbatch's `--mem` (`16G`).
    pub mem: Option<String>,
    /// More sbatch arguments, as they are.
    pub extra_args: Vec<String>,
    /// The largest job array to submit; larger batches are split (keep it under the site's
    /// MaxArraySize).
    pub max_array_size: usize,
    /// Seconds between two polls of the cluster (one squeue call each).
    pub poll_seconds: f64,
    /// A run whose job nears its time limit (warned by SIGUSR1 `signal_seconds` before), is
    /// preempted, or whose node fails, is submitted again and resumes from its mid-run
    /// checkpoint, without spending a retry.
    pub requeue: bool,
    /// How long before the time limit Slurm warns the worker (`--signal=B:USR1@N`).
    pub signal_seconds: u32,
}

impl Default for SlurmSpec {
    fn default() -> Self {
        SlurmSpec {
            partition: None,
            account: None,
            qos: None,
            time: None,
            gpus: None,
            mem: None,
            extra_args: Vec::new(),
            max_array_size: 1000,
            poll_seconds: 5.0,
            requeue: true,
            signal_seconds: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GpuSelection {
    Keyword(GpuKeyword),
    List(Vec<String>),
}

impl Default for GpuSelection {
    fn default() -> Self {
        GpuSelection::Keyword(GpuKeyword::Auto)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuKeyword {
    Auto,
    None,
}
