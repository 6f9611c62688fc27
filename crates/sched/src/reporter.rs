//! How the scheduler tells its caller what happens; the CLI draws progress bars from it.

use oodlab_protocol::Event;

use crate::PlannedRun;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// Finished; `flags` are the store's warnings about it (a collapsed fine-tune, a rising
    /// loss), each a sentence, empty for most runs.
    Done {
        flags: Vec<String>,
    },
    /// Failed; `retrying` when another attempt follows.
    Failed {
        reason: String,
        retrying: bool,
    },
    Interrupted,
    /// Stopped to be submitted again (Slurm's time-limit warning, a preemption, a lost node); it
    /// resumes from its mid-run checkpoint.
    Requeued {
        reason: String,
    },
    /// Not started: a run it depends on failed.
    Blocked {
        parent: String,
    },
}

pub trait Reporter: Send + Sync {
    /// A grid joined the queue (or was found queued): its runs and how many are done already.
    fn grid_queued(&self, experiment: &str, runs: usize, already_done: usize);
    /// A grid left the queue: `finished`, `removed` or `cancelled`.
    fn grid_ended(&self, experiment: &str, state: &str);
    /// A file of the inbox was not a message; it is deleted.
    fn bad_message(&self, path: &std::path::Path, reason: &str);
    fn launched(&self, run: &PlannedRun, slot: &str, attempt: u32);
    fn event(&self, run: &PlannedRun, event: &Event);
    fn ended(&self, run: &PlannedRun, end: &RunEnd);
    /// SIGINT or SIGTERM arrived; running workers are being stopped.
    fn cancelling(&self, running: usize);
    /// A notification (the spec's `notify`) could not be delivered; nothing else is affected.
    fn notice_failed(&self, reason: &str);
}
