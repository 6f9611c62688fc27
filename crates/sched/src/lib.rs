//! The scheduler: serves the home's queue of grids (each a plan's DAG of runs) on local slots (CPU
//! thread budgets or GPUs), one `oodlab worker` process per run, and records what the workers
//! report in the store, of which it is the only writer. One scheduler works on a home at a time
//! ([`HomeLock`]); other processes reach it through the home's inbox ([`inbox`], [`deliver()`]).
//!
//! Split by role: [`slots`] discovers and hands out places to run, `executor` owns one worker
//! process, `dispatcher` owns the queue and all run state in one `select!` loop, and [`Reporter`]
//! is how the caller hears about progress (this crate never prints).
//!
//! ```no_run
//! # async fn f(store: oodlab_store::Store, grid: oodlab_store::NewGrid, reporter: &dyn oodlab_sched::Reporter) {
//! use oodlab_sched::{serve, slots, Inbox, SchedulerConfig, Until, WorkerCommand};
//! let config = SchedulerConfig {
//!     worker: WorkerCommand { program: std::env::current_exe().unwrap(), args: vec!["worker".into()] },
//!     slots: slots::cpu_slots(2, 1),
//!     slurm: None,
//!     grace: std::time::Duration::from_secs(10),
//!     host: "localhost".into(),
//!     git_commit: None,
//!     backups: None,
//!     stage: None,
//! };
//! store.enqueue(&grid).await.unwrap();
//! let inbox = Inbox::new(".oodlab".as_ref());
//! let summary = serve(&store, &inbox, &config, reporter, Until::QueueEmpty, tokio::signal::ctrl_c()).await.unwrap();
//! println!("{} done, {} failed", summary.done, summary.failed);
//! # }
//! ```

mod backups;
mod deliver;
mod dispatcher;
pub mod events_tail;
mod executor;
pub mod home_lock;
pub mod inbox;
pub mod notify;
mod reporter;
pub mod slots;
pub mod slurm;
mod stale;

use std::path::PathBuf;
use std::time::Duration;

use oodlab_protocol::WorkerJob;
use thiserror::Error;

pub use deliver::{apply_offline, deliver, Delivered};
pub use dispatcher::{serve, Until};
pub use events_tail::EventTail;
pub use home_lock::{HomeLock, LockError};
pub use inbox::{Inbox, Message};
pub use reporter::{Reporter, RunEnd};
pub use slots::Slot;

/// A run ready to be scheduled.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub id: String,
    /// The run whose checkpoint this one starts from; it must finish first.
    pub parent: Option<String>,
    /// Short human label (entry, seed, split) for progress display.
    pub label: String,
    pub job: WorkerJob,
}

impl PlannedRun {
    pub fn run_dir(&self) -> &PathBuf {
        &self.job.run_dir
    }

    /// Whether this is a rescore of a finished run rather than its training.
    pub fn is_rescore(&self) -> bool {
        self.job.rescore.is_some()
    }

    /// What the scheduler knows this job by: the run id for training, the run id with
    /// `+rescore` for a rescore, which may be served while the run's own grid is.
    pub fn key(&self) -> String {
        if self.is_rescore() {
            format!("{}+rescore", self.id)
        } else {
            self.id.clone()
        }
    }
}

/// How to start a worker: `program args... --run <run.json>`.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub worker: WorkerCommand,
    pub slots: Vec<Slot>,
    /// Submit runs to Slurm instead of starting local workers; the slots then bound how many runs
    /// are submitted at once.
    pub slurm: Option<slurm::SlurmConfig>,
    /// Time a worker gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    pub host: String,
    pub git_commit: Option<String>,
    /// Backups of the store as runs finish (the home's `store.backup_every`).
    pub backups: Option<Backups>,
    /// What adds runs to a grid while it is served (the tuning stage); none: grids are fixed.
    pub stage: Option<std::sync::Arc<dyn Stage>>,
}

/// What a grid gains while it is served: the tuning stage's trials and, once a search has
/// chosen, the runs that waited for its choice (issue #33). Implemented where specs are known
/// (the CLI), so that this crate stays independent of them. The stage registers and queues the
/// runs it adds in the store itself (the grid's queued runs, with its own record, in one
/// transaction), so a scheduler started again finds them queued like any other.
pub trait Stage: Send + Sync + std::fmt::Debug {
    /// The runs grid `grid` gains now (about `want` of them at most: one per free slot, so that
    /// successive halving promotes before it starts more), and whether it will ever gain more.
    fn next<'a>(&'a self, store: &'a oodlab_store::Store, grid: StageGrid<'a>, want: usize) -> StageFuture<'a>;
}

/// What [`Stage::next`] returns.
pub type StageFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Grown, String>> + Send + 'a>>;

/// The grid a stage is asked about.
#[derive(Debug, Clone, Copy)]
pub struct StageGrid<'a> {
    /// Its queue id.
    pub id: i64,
    pub experiment: &'a str,
    /// The runs this scheduler gave up on, blocked ones included (the store may still say
    /// pending for a run whose parent failed).
    pub failed: &'a std::collections::HashSet<String>,
}

/// Runs a stage added (as queued), and whether it is over.
#[derive(Debug, Clone, Default)]
pub struct Grown {
    pub runs: Vec<oodlab_store::QueuedRun>,
    pub over: bool,
}

/// A backup of the store into `dir` after every `every` runs finished, the last `keep` kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backups {
    pub dir: std::path::PathBuf,
    pub every: u32,
    pub keep: u32,
}

/// What a scheduling session did, over every grid it served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs of the served grids that were already done and were not started.
    pub already_done: usize,
    pub done: usize,
    pub failed: usize,
    pub interrupted: usize,
    /// Runs not started because a run they depend on failed.
    pub blocked: usize,
    /// Rescores (`oodlab rescore`) that finished, and that failed (their runs stay done).
    pub rescored: usize,
    pub rescore_failed: usize,
    /// Attempts stopped to be submitted again (Slurm's time limit, preemption).
    pub requeued: usize,
    /// Whether the session stopped because of SIGINT or SIGTERM.
    pub cancelled: bool,
    /// Under Slurm: polls and `squeue` calls.
    pub slurm: Option<slurm::SlurmStats>,
}

#[derive(Debug, Error)]
pub enum SchedError {
    #[error(transparent)]
    Store(#[from] oodlab_store::StoreError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no slots to run on; give --jobs 1 or more")]
    NoSlots,
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("queued grid {queue_id} in the store is unreadable: {reason}")]
    BadQueue { queue_id: i64, reason: String },
}
